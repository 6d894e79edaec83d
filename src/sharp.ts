/**
 * sharp (libvips) loaded at its first use, not at start: it is some 11 MB of resident memory
 * that a hub serving only pass-through replies never needs (issue 17: idle RSS).
 */
import type SharpModule from "sharp";

type Sharp = typeof SharpModule;

let loading: Promise<Sharp> | undefined;

/** The sharp function; the module is imported once, on the first call. */
export function loadSharp(): Promise<Sharp> {
  loading ??= import("sharp").then((module) => module.default);
  return loading;
}
