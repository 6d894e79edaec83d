/**
 * A small loopback server holding one PNG at `/input.png`, for tests of client image URLs (the
 * hub fetches them; IMAGE_FETCH_ALLOW_CIDRS must allow 127.0.0.1). It counts its requests, so a
 * test can tell who fetched the image and how often.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import sharp from "sharp";

export interface ImageServer {
  /** `http://127.0.0.1:PORT`; the image is at `${url}/input.png`. */
  url: string;
  png: Buffer;
  /** Requests received so far, for any path. */
  hits(): number;
  close(): Promise<void>;
}

export async function startImageServer(
  size: { width: number; height: number } = { width: 64, height: 48 },
): Promise<ImageServer> {
  const png = await sharp({
    create: { ...size, channels: 4, background: { r: 200, g: 30, b: 90, alpha: 1 } },
  })
    .png()
    .toBuffer();
  let hits = 0;
  const server = createServer((request, response) => {
    hits += 1;
    if (request.url === "/input.png") {
      response.writeHead(200, { "content-type": "image/png" });
      response.end(png);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    png,
    hits: () => hits,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
