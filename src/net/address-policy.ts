/**
 * Which IP addresses the hub may connect to when it fetches a URL a client gave it.
 *
 * The rule is an allow rule, not a deny list: an address passes only when ipaddr.js calls it
 * plain `unicast` (and, for IPv6, it lies in 2000::/3, the only block IANA hands out as global
 * unicast). Everything else is refused: loopback, private, link-local (cloud metadata at
 * 169.254.169.254), CGNAT, multicast, broadcast, reserved, documentation, benchmarking,
 * unique-local, tunnelling prefixes (6to4, Teredo) and whatever IANA assigns a special purpose
 * next. A deny list misses the range nobody thought of; this rule misses nothing but new public
 * space, which is a safe way to fail.
 *
 * Pure: no I/O. Callers pass addresses as they come from `dns.lookup` or a URL's host.
 */
import ipaddr from "ipaddr.js";

export interface AddressVerdict {
  allowed: boolean;
  /** Why an address is refused: the class of its range, never the address itself. */
  reason?: string;
}

export type AddressPolicy = (ip: string) => AddressVerdict;

export interface AddressPolicyOptions {
  /**
   * CIDRs allowed even though the rule above refuses them, e.g. an internal image host
   * (`10.1.2.0/24`). IPv4-mapped IPv6 addresses are matched as the IPv4 address they carry.
   */
  allowCidrs?: readonly string[];
}

type ParsedAddress = ipaddr.IPv4 | ipaddr.IPv6;
type Cidr = [ParsedAddress, number];

/** Words a client or an operator reads, for the ranges ipaddr.js names. */
const RANGE_NAMES: Record<string, string> = {
  unspecified: "unspecified",
  broadcast: "broadcast",
  multicast: "multicast",
  linkLocal: "link-local",
  loopback: "loopback",
  carrierGradeNat: "carrier-grade NAT",
  private: "private",
  reserved: "reserved",
  as112: "AS112",
  amt: "AMT",
  uniqueLocal: "unique-local",
  deprecatedSiteLocal: "site-local",
  discard: "discard-only",
  rfc6145: "IPv4-translated",
  rfc6052: "NAT64",
  "6to4": "6to4",
  teredo: "Teredo",
  benchmarking: "benchmarking",
  as112v6: "AS112",
  deprecatedOrchid: "ORCHID",
  orchid2: "ORCHIDv2",
  droneRemoteIdProtocolEntityTags: "DRIP",
  segmentRouting: "segment routing",
};

/** 2000::/3: global unicast; IPv6 outside it is reserved, special or not yet assigned. */
const GLOBAL_UNICAST_V6 = ipaddr.IPv6.parseCIDR("2000::/3");
/** 64:ff9b::/96, the well-known NAT64 prefix: judged by the IPv4 address it embeds. */
const NAT64_WELL_KNOWN = ipaddr.IPv6.parseCIDR("64:ff9b::/96");

/**
 * Builds the policy once (CIDRs parsed up front, so a typo fails at start-up, not per request).
 *
 * @example
 * const policy = createAddressPolicy({ allowCidrs: ["10.1.2.0/24"] });
 * policy("10.1.2.3"); // { allowed: true }
 * policy("127.0.0.1"); // { allowed: false, reason: "loopback" }
 */
export function createAddressPolicy(options: AddressPolicyOptions = {}): AddressPolicy {
  const allowed: Cidr[] = (options.allowCidrs ?? []).map((cidr) => parseCidr(cidr));
  return (ip) => {
    const address = parseAddress(ip);
    if (address === undefined) return { allowed: false, reason: "not an IP address" };
    if (allowed.some((cidr) => matches(address, cidr))) return { allowed: true };
    return judge(address);
  };
}

/** The default policy, without an allow-list. */
export function isBlockedAddress(ip: string): boolean {
  return !defaultPolicy(ip).allowed;
}

const defaultPolicy = createAddressPolicy();

function judge(address: ParsedAddress): AddressVerdict {
  if (address.kind() === "ipv4") {
    const range = address.range();
    return range === "unicast" ? { allowed: true } : refused(range);
  }
  const v6 = address as ipaddr.IPv6;
  if (v6.match(NAT64_WELL_KNOWN)) {
    // A DNS64 resolver answers 64:ff9b::a.b.c.d for IPv4-only hosts; the NAT64 gateway then
    // connects to a.b.c.d, so that address is what must be judged.
    const embedded = ipaddr.IPv4.parse(v6.toByteArray().slice(12).join("."));
    const verdict = judge(embedded);
    return verdict.allowed ? verdict : refused("rfc6052", verdict.reason);
  }
  const range = v6.range();
  if (range !== "unicast") return refused(range);
  if (!v6.match(GLOBAL_UNICAST_V6)) {
    // ::a.b.c.d (IPv4-compatible, deprecated) and unassigned space fall here.
    const isV4Compatible = v6.parts.slice(0, 6).every((part) => part === 0);
    return { allowed: false, reason: isV4Compatible ? "IPv4-compatible" : "not global unicast" };
  }
  return { allowed: true };
}

function refused(range: string, inner?: string): AddressVerdict {
  const name = RANGE_NAMES[range] ?? range;
  return { allowed: false, reason: inner === undefined ? name : `${name} to ${inner}` };
}

/** Parses an address, dropping an IPv6 zone and unwrapping IPv4-mapped (::ffff:a.b.c.d). */
function parseAddress(ip: string): ParsedAddress | undefined {
  let bare = ip.startsWith("[") && ip.endsWith("]") ? ip.slice(1, -1) : ip;
  if (bare.includes(":")) bare = withHexTail(bare);
  if (!ipaddr.isValid(bare)) return undefined;
  const address = ipaddr.parse(bare);
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (address as ipaddr.IPv6).toIPv4Address();
  }
  return address;
}

/**
 * Rewrites an IPv6 address's dotted IPv4 tail as two hex groups (`::127.0.0.1` → `::7f00:1`).
 * ipaddr.js reads any `::a.b.c.d` as IPv4-mapped, which would judge the IPv4-compatible
 * `::8.8.8.8` as the public 8.8.8.8; the hex form it reads as written.
 */
function withHexTail(ip: string): string {
  const zone = ip.indexOf("%");
  const address = zone === -1 ? ip : ip.slice(0, zone);
  const tail = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(address);
  if (tail === null) return ip;
  const [a, b, c, d] = tail.slice(1).map(Number) as [number, number, number, number];
  if ([a, b, c, d].some((octet) => octet > 255)) return ip;
  const hex = `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  return `${address.slice(0, tail.index)}${hex}${zone === -1 ? "" : ip.slice(zone)}`;
}

function parseCidr(cidr: string): Cidr {
  let parsed: Cidr;
  try {
    const slash = cidr.indexOf("/");
    const address = slash === -1 ? cidr : cidr.slice(0, slash);
    parsed = ipaddr.parseCIDR(
      address.includes(":") ? `${withHexTail(address)}${cidr.slice(address.length)}` : cidr,
    );
  } catch (error) {
    throw new Error(`Not a CIDR: '${cidr}' (expected e.g. 10.1.2.0/24 or fd00::/8).`, {
      cause: error,
    });
  }
  const [address, bits] = parsed;
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96];
  }
  return parsed;
}

function matches(address: ParsedAddress, [network, bits]: Cidr): boolean {
  return address.kind() === network.kind() && address.match(network, bits);
}
