#!/usr/bin/env python3
"""digestgen.py — write the seed corpus of fuzz_digest (tests/fuzz/digest/).

Usage: tests/fuzz/digestgen.py [OUT_DIR]   (default: tests/fuzz/digest next
to this file). Writes card digests in the layout of proto/STORAGE.md
("digests"), encoded here independently of src/store/digest.c; every
seed-valid-* file must parse (tests/store/test_digest.c checks that, so
the two implementations agree on the format). Deterministic: the same
files every run.
"""
import os
import struct
import sys

NOSTR = 0xFFFF


def digest(entries, cap, complete):
    """entries: (ts, seq, channel, outcome, sentiment or None, kind, topic, issue_id, agent),
    newest first. Strings are numbered in order of first use."""
    strs, index = [], {}

    def idx(s):
        if not s:
            return NOSTR
        b = s.encode()
        if b not in index:
            index[b] = len(strs)
            strs.append(b)
        return index[b]

    body = b""
    for ts, seq, ch, out, sent, kind, topic, issue, agent in entries:
        ks = [idx(kind), idx(topic), idx(issue), idx(agent)]
        flags = 1 if sent is not None else 0
        body += struct.pack("<qIBBBBd4H", ts, seq, ch, out, flags, 0, sent or 0.0, *ks)
    offs, blob = b"", b""
    for s in strs:
        offs += struct.pack("<I", len(blob))
        blob += struct.pack("<H", len(s)) + s
    hdr = struct.pack("<BBHIII", 1, 1 if complete else 0, len(strs), len(entries), cap, 0)
    return hdr + body + offs + blob


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "digest")
    os.makedirs(out, exist_ok=True)
    t = 1732350000
    seeds = {
        "seed-valid-empty": digest([], 200, True),
        "seed-valid-one": digest([(t, 0, 1, 1, None, "contact", "billing", "", "ana")], 200, True),
        "seed-valid-same-second": digest([
            (t, 2, 2, 2, -0.5, "contact", "billing", "T-1", "ana"),
            (t, 1, 3, 0, 1.0, "contact", "billing", "T-1", "bo"),
            (t, 0, 6, 0, None, "outage", "", "", ""),
        ], 3, False),
        "seed-valid-mixed": digest([
            (t - 10 * i, i % 3, 1 + i % 6, i % 5, (i - 5) / 10 if i % 2 else None,
             ["contact", "order", "login_failed"][i % 3], ["billing", "Billing", "", "router"][i % 4],
             ["", "order-77", "T-2"][i % 3], ["", "chen", "ana"][i % 3])
            for i in range(12)
        ], 12, True),
        "seed-valid-long-strings": digest([
            (t, 0, 4, 3, 0.25, "k" * 64, "t" * 64, "I" * 64, "a" * 64),
        ], 1, False),
    }
    for name, b in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b)


if __name__ == "__main__":
    main()
