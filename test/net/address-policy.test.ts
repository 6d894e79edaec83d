import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { createAddressPolicy, isBlockedAddress } from "../../src/net/address-policy.ts";

/** [address, the range class named in the reason] for addresses the default policy refuses. */
const BLOCKED: [string, string][] = [
  // IPv4
  ["127.0.0.1", "loopback"],
  ["127.255.255.254", "loopback"],
  ["10.0.0.1", "private"],
  ["10.255.255.255", "private"],
  ["172.16.0.1", "private"],
  ["172.31.255.254", "private"],
  ["192.168.1.1", "private"],
  ["169.254.169.254", "link-local"],
  ["169.254.0.1", "link-local"],
  ["100.64.0.1", "carrier-grade NAT"],
  ["100.127.255.254", "carrier-grade NAT"],
  ["224.0.0.1", "multicast"],
  ["239.255.255.250", "multicast"],
  ["0.0.0.0", "unspecified"],
  ["0.1.2.3", "unspecified"],
  ["255.255.255.255", "broadcast"],
  ["240.0.0.1", "reserved"],
  ["192.0.0.8", "reserved"],
  ["198.18.0.1", "reserved"],
  ["198.19.255.254", "reserved"],
  ["192.0.2.1", "reserved"],
  ["198.51.100.7", "reserved"],
  ["203.0.113.9", "reserved"],
  ["192.88.99.1", "reserved"],
  // IPv6
  ["::1", "loopback"],
  ["0:0:0:0:0:0:0:1", "loopback"],
  ["::", "unspecified"],
  ["fc00::1", "unique-local"],
  ["fd12:3456:789a::1", "unique-local"],
  ["fe80::1", "link-local"],
  ["fe80::1%eth0", "link-local"],
  ["febf::1", "link-local"],
  ["fec0::1", "site-local"],
  ["ff02::1", "multicast"],
  ["ff05::2", "multicast"],
  ["100::1", "discard-only"],
  ["2001:db8::1", "reserved"],
  ["2001::1", "Teredo"],
  ["2001:2::1", "benchmarking"],
  ["2002:7f00:1::1", "6to4"],
  ["2002:0808:0808::1", "6to4"],
  ["::ffff:0:7f00:1", "IPv4-translated"],
  ["::7f00:1", "IPv4-compatible"],
  ["::127.0.0.1", "IPv4-compatible"],
  ["::8.8.8.8", "IPv4-compatible"],
  ["::808:808", "IPv4-compatible"],
  ["64:ff9b::7f00:1", "NAT64 to loopback"],
  ["64:ff9b::a9fe:a9fe", "NAT64 to link-local"],
  ["64:ff9b::10.0.0.1", "NAT64 to private"],
  ["64:ff9b:1::808:808", "NAT64"],
  ["4000::1", "not global unicast"],
  ["192.0.0.170", "reserved"],
  ["2001:5::1", "reserved"],
  ["3fff::1", "reserved"],
  ["5f00::1", "segment routing"],
  ["64:ff9b::c0a8:101", "NAT64 to private"],
  ["2002:a9fe:a9fe::1", "6to4"],
  ["ff0e::1", "multicast"],
  ["::ffff:0.0.0.0", "unspecified"],
  ["::1%lo", "loopback"],
  // IPv4-mapped IPv6: judged as the IPv4 address inside
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:7f00:1", "loopback"],
  ["0:0:0:0:0:ffff:7f00:1", "loopback"],
  ["::ffff:10.0.0.1", "private"],
  ["::ffff:169.254.169.254", "link-local"],
  ["[::ffff:127.0.0.1]", "loopback"],
  // not an address at all
  ["localhost", "not an IP address"],
  ["", "not an IP address"],
  ["1.2.3.4.5", "not an IP address"],
];

const ALLOWED = [
  "8.8.8.8",
  "1.1.1.1",
  "93.184.216.34",
  "172.15.255.255",
  "172.32.0.1",
  "100.63.255.255",
  "100.128.0.1",
  "198.17.255.255",
  "198.20.0.1",
  "2606:4700::1111",
  "2001:4860:4860::8888",
  "2a00:1450:4001:80b::200e",
  "::ffff:8.8.8.8",
  "64:ff9b::808:808",
];

describe("default policy", () => {
  const policy = createAddressPolicy();

  for (const [address, reason] of BLOCKED) {
    test(`blocks ${address || "(empty)"} (${reason})`, () => {
      assert.deepEqual(policy(address), { allowed: false, reason });
      assert.equal(isBlockedAddress(address), true);
    });
  }

  for (const address of ALLOWED) {
    test(`allows ${address}`, () => {
      assert.deepEqual(policy(address), { allowed: true });
      assert.equal(isBlockedAddress(address), false);
    });
  }
});

describe("allow-list", () => {
  test("allows exactly the listed CIDRs and nothing next to them", () => {
    const policy = createAddressPolicy({ allowCidrs: ["127.0.0.1/32", "10.1.2.0/24", "fd00::/8"] });
    assert.equal(policy("127.0.0.1").allowed, true);
    assert.equal(policy("::ffff:127.0.0.1").allowed, true);
    assert.equal(policy("10.1.2.200").allowed, true);
    assert.equal(policy("fd00::5").allowed, true);
    assert.deepEqual(policy("127.0.0.2"), { allowed: false, reason: "loopback" });
    assert.deepEqual(policy("10.1.3.1"), { allowed: false, reason: "private" });
    assert.deepEqual(policy("fc00::1"), { allowed: false, reason: "unique-local" });
    assert.deepEqual(policy("::1"), { allowed: false, reason: "loopback" });
    assert.equal(policy("8.8.8.8").allowed, true);
  });

  test("an IPv4-mapped CIDR allows the IPv4 addresses it covers", () => {
    const policy = createAddressPolicy({ allowCidrs: ["::ffff:192.168.0.0/112"] });
    assert.equal(policy("192.168.5.6").allowed, true);
    assert.equal(policy("::ffff:192.168.255.1").allowed, true);
    assert.equal(policy("10.0.0.1").allowed, false);
  });

  test("an empty allow-list is the default policy", () => {
    const policy = createAddressPolicy({ allowCidrs: [] });
    assert.equal(policy("127.0.0.1").allowed, false);
    assert.equal(policy("8.8.8.8").allowed, true);
  });

  test("a malformed CIDR fails when the policy is built", () => {
    assert.throws(
      () => createAddressPolicy({ allowCidrs: ["10.0.0.0"] }),
      /Not a CIDR: '10.0.0.0'/,
    );
    assert.throws(() => createAddressPolicy({ allowCidrs: ["nonsense/8"] }), /Not a CIDR/);
  });
});
