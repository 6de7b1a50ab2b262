// Types of rapport-client (hand-written; the package is plain JavaScript).
// Records and results follow proto/RECORDS.md, proto/CARD.md and
// proto/METHODS.md; the main ones are typed loosely (index signatures) so
// fields added by the server do not break callers.

/// <reference types="node" />

export type ServerErrorCode =
  | "NOT_FOUND" | "BAD_REQUEST" | "UNAUTHORIZED" | "FORBIDDEN" | "CONFLICT"
  | "TOO_LARGE" | "STORE_FULL" | "UNAVAILABLE" | "INTERNAL";
/** TIMEOUT: no reply in time; DISCONNECTED: the connection closed first (or the client was closed). */
export type ClientErrorCode = "TIMEOUT" | "DISCONNECTED";
export type ErrorCode = ServerErrorCode | ClientErrorCode;

export const CODES: Readonly<{ [K in ErrorCode]: K }>;

export class RapportError extends Error {
  constructor(code: ErrorCode, message: string, opts?: { method?: string; remote?: boolean; cause?: unknown });
  readonly name: "RapportError";
  readonly code: ErrorCode;
  /** The RPC method of the call that failed (undefined for connect). */
  readonly method?: string;
  /** True when the server answered with this error. */
  readonly remote: boolean;
  /** UNAVAILABLE, TIMEOUT or DISCONNECTED: worth sending again after a back-off. */
  readonly retryable: boolean;
  /** Client.import only: the counts of the batches that did go through. */
  result?: ImportResult;
}

export interface ClientOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 7070. */
  port?: number;
  /** Sent with `auth` on every (re)connection. Omit when the server has no tokens. */
  token?: string;
  /** Connections in the pool; default 2. */
  poolSize?: number;
  /** How a call picks its connection; default "least-in-flight". */
  balance?: "least-in-flight" | "round-robin";
  /** Per-call timeout in ms (0 or Infinity: none); default 5000. */
  timeout?: number;
  /** Connect + auth of one connection, in ms; default 3000. */
  connectTimeout?: number;
  /** Exponential back-off between reconnect attempts (ms), with jitter. Default {50, 5000, 2}. */
  reconnect?: { initialDelay?: number; maxDelay?: number; factor?: number };
  /** Do not let pending call timers keep the process alive. */
  unrefTimers?: boolean;
}

export interface CallOptions { timeout?: number }
export interface WriteOptions extends CallOptions {
  /** The `idempotency_key` param: a retry with the same key answers the first result. */
  idempotencyKey?: string;
}
export interface VersionedWriteOptions extends WriteOptions {
  /** The stored version must equal it (0: must not exist yet); else CONFLICT. */
  expectVersion?: number;
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type IdentityKey = { phone: string } | { email: string } | { account: string };

export interface Customer {
  id?: string;
  name?: string | null;
  preferred_name?: string | null;
  language?: string | null;
  tier?: string | null;
  customer_since?: number | null;
  flags?: string[];
  preferences?: Record<string, string>;
  rapport_notes?: Json[];
  phones?: string[];
  emails?: string[];
  accounts?: string[];
  version?: number;
  updated_at?: number;
  [field: string]: Json | undefined;
}

export interface RapportEvent {
  customer_id: string;
  ts: number;
  channel: string;
  kind: string;
  event_id?: string;
  topic?: string;
  outcome?: string;
  summary?: string;
  sentiment?: number;
  agent?: string;
  issue_id?: string;
  seq?: number;
  [field: string]: Json | undefined;
}

export interface Issue {
  customer_id: string;
  issue_id: string;
  topic?: string;
  status?: string;
  severity?: string;
  summary?: string;
  follow_up_due?: number;
  [field: string]: Json | undefined;
}

export interface Route {
  found: boolean;
  ambiguous: boolean;
  customer_id: string | null;
  language: string | null;
  tier: string | null;
  priority: number;
  intent: string | null;
  issue_id: string | null;
  last_agent: string | null;
}

/** The context card (proto/CARD.md). */
export interface Card {
  found: boolean;
  ambiguous: boolean;
  at: number;
  customer: Customer | null;
  likely_reasons: Array<{ topic: string; issue_id: string | null; event_ts: number | null; score: number; evidence: string; [k: string]: Json }>;
  cues: Array<{ code: string; text: string; [k: string]: Json }>;
  recent_events: RapportEvent[];
  open_issues: Issue[];
  attributes: { [k: string]: Json };
  candidates: Array<{ customer_id: string; name: string | null; [k: string]: Json }>;
  [field: string]: Json | undefined;
}

export interface Lookup {
  found: boolean;
  ambiguous: boolean;
  key: string;
  candidates: Array<{ customer_id: string; name: string | null }>;
  truncated?: boolean;
}

export interface AppendResult { customer_id: string; ts: number; seq: number; cursor: string; duplicate: boolean }
export interface HistoryPage { customer_id: string; events: RapportEvent[]; next: string | null }
export interface Stats {
  customers: number; events: number; issues: number; aliases: number;
  phones: number; emails: number; accounts: number;
  map_size: number; map_used: number; map_max: number;
  writer: { commits: number; writes_ok: number; writes_failed: number; map_grows: number; queue_depth: number };
}

export interface ImportOptions extends CallOptions {
  /** One batch at a time; a refused record fails its batch (nothing of it written) and stops the import. */
  strict?: boolean;
  /** Records per batch, default 500 (as `rapport import`). */
  batchSize?: number;
  /** MessagePack bytes per batch, default 1 MiB. */
  batchBytes?: number;
  /** Batches in flight without strict, default 4. */
  window?: number;
}
export interface ImportError {
  /** The record's position among those sent (null: a line that did not parse). */
  index: number | null;
  /** Its line (1-based, blank lines counted) or position in the iterable. */
  line: number;
  code: ErrorCode;
  message: string;
}
export interface ImportResult {
  imported: number;
  skipped: number;
  duplicates: number;
  errors: ImportError[];
  errors_truncated?: boolean;
  batches: number;
  lines: number;
}
export type ImportSource =
  | string | Uint8Array
  | NodeJS.ReadableStream
  | Iterable<string | Uint8Array | Record<string, unknown>>
  | AsyncIterable<string | Uint8Array | Record<string, unknown>>;

export class Client {
  constructor(opts?: ClientOptions | `${string}:${number}`);
  /** Resolves when every pooled connection is connected (and authenticated). */
  connect(opts?: { timeout?: number }): Promise<this>;
  /** Any method by name: resolves with its result, rejects with a RapportError. */
  call<T = any>(method: string, params?: Record<string, unknown>, opts?: CallOptions): Promise<T>;
  poolState(): Array<{ ready: boolean; inFlight: number }>;
  close(): void;

  ping(opts?: CallOptions): Promise<{ pong: true; time: number }>;
  auth(token: string, opts?: CallOptions): Promise<{ role: "route" | "agent" | "ingest" | "admin" }>;
  /** The screen-pop card; a string key is a phone. */
  context(key: string | IdentityKey | { id: string }, opts?: CallOptions & { at?: number }): Promise<Card>;
  /** The IVR routing answer for a caller's number. */
  route(phone: string, opts?: CallOptions & { at?: number }): Promise<Route>;
  /** A string key is a phone. */
  lookup(key: string | IdentityKey, opts?: CallOptions): Promise<Lookup>;
  readonly customer: {
    get(id: string, opts?: CallOptions): Promise<Customer>;
    put(id: string, customer: Customer, opts?: VersionedWriteOptions): Promise<{ id: string; version: number }>;
    patch(id: string, patch: Partial<Customer>, opts?: VersionedWriteOptions): Promise<{ id: string; version: number }>;
    forget(id: string, opts?: WriteOptions): Promise<{ id: string; forgotten: true }>;
    merge(from: string, into: string, opts?: WriteOptions): Promise<{ id: string; version: number; duplicate_events: number }>;
  };
  eventAppend(event: RapportEvent, opts?: WriteOptions): Promise<AppendResult>;
  issuePut(issue: Issue, opts?: WriteOptions): Promise<{ customer_id: string; issue_id: string }>;
  issues(id: string, opts?: CallOptions): Promise<{ customer_id: string; issues: Issue[]; truncated?: boolean }>;
  /** One page, newest first; pass `next` as `before` for the next page. */
  history(id: string, opts?: CallOptions & { limit?: number; before?: string }): Promise<HistoryPage>;
  /** Every event, newest first, fetched page by page. */
  historyAll(id: string, opts?: CallOptions & { limit?: number; before?: string }): AsyncGenerator<RapportEvent, void, undefined>;
  stats(opts?: CallOptions): Promise<Stats>;
  /** Records (NDJSON text, a byte stream, or an iterable of lines/objects) in batches of `import`. */
  import(source: ImportSource, opts?: ImportOptions): Promise<ImportResult>;
}
