#!/usr/bin/env python3
"""check.py — verify the golden vectors without msgpack-c or any package.

For each record (customer, event, issue) this decodes <name>.hex with a
small MessagePack decoder written here, checks that it equals <name>.json
(values and key order), and re-encodes the JSON with an independent
smallest-form encoder, which must give the very same bytes. The stored
forms (<name>.stored.hex) are the JSON minus the fields the LMDB key holds.

Run: python3 proto/vectors/check.py   (exit status 0 when all match)
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_FIELDS = {"event": ["customer_id", "ts"], "issue": ["customer_id", "issue_id"]}


def decode(b, i=0):
    """Decode one object at b[i:]; return (value, next index). Maps become
    lists of (key, value) pairs so that key order can be checked."""
    t = b[i]
    if t <= 0x7F:
        return t, i + 1
    if t >= 0xE0:
        return t - 0x100, i + 1
    if 0x80 <= t <= 0x8F:
        return decode_map(b, i + 1, t & 0x0F)
    if 0x90 <= t <= 0x9F:
        return decode_array(b, i + 1, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return b[i + 1:i + 1 + n].decode("utf-8"), i + 1 + n
    if t == 0xC0:
        return None, i + 1
    if t in (0xC2, 0xC3):
        return t == 0xC3, i + 1
    fixed = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
             0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
    if t in fixed:
        size = struct.calcsize(fixed[t])
        return struct.unpack(fixed[t], b[i + 1:i + 1 + size])[0], i + 1 + size
    lens = {0xD9: (">B", "str"), 0xDA: (">H", "str"), 0xDB: (">I", "str"),
            0xDC: (">H", "arr"), 0xDD: (">I", "arr"), 0xDE: (">H", "map"), 0xDF: (">I", "map")}
    if t in lens:
        f, kind = lens[t]
        size = struct.calcsize(f)
        n = struct.unpack(f, b[i + 1:i + 1 + size])[0]
        j = i + 1 + size
        if kind == "str":
            return b[j:j + n].decode("utf-8"), j + n
        return (decode_array if kind == "arr" else decode_map)(b, j, n)
    raise ValueError("unsupported type byte 0x%02x at %d" % (t, i))


def decode_array(b, i, n):
    out = []
    for _ in range(n):
        v, i = decode(b, i)
        out.append(v)
    return out, i


def decode_map(b, i, n):
    out = []
    for _ in range(n):
        k, i = decode(b, i)
        v, i = decode(b, i)
        out.append((k, v))
    return out, i


def encode(v):
    """Smallest-form MessagePack, as msgpack-c's packers write it."""
    if v is None:
        return b"\xc0"
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return bytes([v + 0x100])
        if v > 0:
            for tag, f, lim in ((0xCC, ">B", 0xFF), (0xCD, ">H", 0xFFFF),
                                (0xCE, ">I", 0xFFFFFFFF), (0xCF, ">Q", 2**64 - 1)):
                if v <= lim:
                    return bytes([tag]) + struct.pack(f, v)
        for tag, f, lim in ((0xD0, ">b", 2**7), (0xD1, ">h", 2**15), (0xD2, ">i", 2**31),
                            (0xD3, ">q", 2**63)):
            if v >= -lim:
                return bytes([tag]) + struct.pack(f, v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, str):
        s = v.encode("utf-8")
        n = len(s)
        if n <= 31:
            return bytes([0xA0 | n]) + s
        if n <= 0xFF:
            return b"\xd9" + bytes([n]) + s
        if n <= 0xFFFF:
            return b"\xda" + struct.pack(">H", n) + s
        return b"\xdb" + struct.pack(">I", n) + s
    if isinstance(v, list):
        head = bytes([0x90 | len(v)]) if len(v) <= 15 else b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(encode(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) <= 15 else b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(encode(k) + encode(x) for k, x in v.items())
    raise TypeError(type(v))


def as_json(v):
    """Decoded value (maps as pair lists) -> plain JSON values, order kept."""
    if isinstance(v, tuple):
        return v
    if isinstance(v, list) and v and all(isinstance(x, tuple) for x in v):
        return {k: as_json(x) for k, x in v}
    if isinstance(v, list):
        return [as_json(x) for x in v]
    return v


def check(name, stored):
    path = os.path.join(HERE, name + (".stored.hex" if stored else ".hex"))
    data = bytes.fromhex(open(path).read().strip())
    want = json.load(open(os.path.join(HERE, name + ".json")))
    if stored:
        for k in KEY_FIELDS[name]:
            del want[k]
    got, end = decode(data)
    if end != len(data):
        return "%s: %d trailing bytes" % (path, len(data) - end)
    # Empty maps decode as [] pairs; the customer's empty collections are not
    # in the example, so as_json needs no special case for them.
    got = as_json(got)
    if got != want or list(got) != list(want):
        return "%s: decodes to %r, want %r" % (path, got, want)
    if encode(want) != data:
        return "%s: bytes are not the smallest-form encoding of the JSON" % path
    return None


def main():
    errors = []
    for name in ("customer", "event", "issue"):
        for stored in ((False, True) if name in KEY_FIELDS else (False,)):
            err = check(name, stored)
            if err:
                errors.append(err)
            else:
                print("ok  %s%s" % (name, " (stored)" if stored else ""))
    for e in errors:
        print("FAIL " + e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
