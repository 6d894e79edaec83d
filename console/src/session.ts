/**
 * The signed-in key lives in the tab (sessionStorage) unless the user asks to stay signed in on
 * this device (localStorage). It never leaves the browser except in the Authorization header.
 */
import { useCallback, useState } from "preact/hooks";
import type { Api } from "./api.ts";

const STORAGE_KEY = "image-hub.key";

/** What `GET /api/me` says of a key. */
export interface Me {
  object: "key";
  id: string;
  name: string;
  role: "admin" | "client";
  balance: number | null;
  models: string[] | null;
  rpm: number | null;
  ipm: number | null;
}

export interface Session {
  key: string;
  me: Me;
  api: Api;
}

export function storedKey(): string | null {
  return sessionStorage.getItem(STORAGE_KEY) ?? localStorage.getItem(STORAGE_KEY);
}

export function storeKey(key: string, remember: boolean): void {
  sessionStorage.setItem(STORAGE_KEY, key);
  if (remember) localStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey(): void {
  sessionStorage.removeItem(STORAGE_KEY);
  localStorage.removeItem(STORAGE_KEY);
}

/** A value that re-renders its owner when set; a small convenience over useState. */
export function useRefresh(): [number, () => void] {
  const [tick, setTick] = useState(0);
  return [tick, useCallback(() => setTick((value) => value + 1), [])];
}
