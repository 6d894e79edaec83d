// One image through image-hub with AIGNE's own client: only the hub's URL and a key are needed.
//   AIGNE_HUB_API_URL=http://127.0.0.1:8080 AIGNE_HUB_API_KEY=sk-ih-… node examples/aigne-image.ts gpt-image-2 "a fox"
import { AIGNEHubImageModel } from "@aigne/aigne-hub";
import { AIGNE } from "@aigne/core";

const model = new AIGNEHubImageModel({ model: process.argv[2] ?? "local/placeholder" });
const prompt = process.argv[3] ?? "A lighthouse at dawn, watercolor";
const result = await new AIGNE().invoke(model, { prompt, outputFileType: "url" });
console.log(JSON.stringify({ model: result.model, images: result.images, usage: result.usage }));
