"""HPACK (RFC 7541) header decoding for the shim's stdlib-only gRPC client.

The grpc server compresses response headers and trailers with HPACK,
including Huffman-coded strings and its dynamic table, so the client must
decode every header block in order to read `grpc-status` of a failed call.
Only decoding is needed: the shim encodes its own request headers as plain
literals, which every server accepts.
"""

from __future__ import annotations

_STATIC: tuple[tuple[str, str], ...] = (
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
)

# Code length in bits of each of the 257 Huffman symbols (RFC 7541 Appendix
# B), as chr(ord("A") + length - 5). The code is canonical: codes follow
# from the lengths alone (sorted by length, then symbol), so the table is
# rebuilt instead of spelled out.
_HUFFMAN_LENGTHS = (
    "ISXXXXXXXTZXXZXXXXXXXXZXXXXXXXXXBFFHIBDGFFDGDBBBAAABBBBBBBCDKBHFIBCCCCCCCCCCCCCC"
    "CCCCCCCCDCDIOIJBKABABABBBACCBBBABCBAABCCCCCKGJIXPRPPRRRSRSSSSSTSTTRSTSSSSQRSRSSTR"
    "QPRRSSQSRRTQRSSQQRQSRSSPRRRSRRSVVPORSRUVVVWWVTUOQVWWVWTQQVVXWWWPTPQRQQSRRUUTTVSV"
    "WVVWWWWWXWWWWWVZ"
)
_EOS = 256
_huffman_codes: dict[tuple[int, int], int] | None = None


class HpackError(ValueError):
    """A header block that cannot be decoded (a broken or hostile peer)."""


def _codes() -> dict[tuple[int, int], int]:
    global _huffman_codes
    if _huffman_codes is None:
        lengths = [ord(c) - ord("A") + 5 for c in _HUFFMAN_LENGTHS]
        order = sorted(range(len(lengths)), key=lambda s: (lengths[s], s))
        table: dict[tuple[int, int], int] = {}
        code = 0
        previous = lengths[order[0]]
        for i, symbol in enumerate(order):
            if i:
                code = (code + 1) << (lengths[symbol] - previous)
                previous = lengths[symbol]
            table[(lengths[symbol], code)] = symbol
        _huffman_codes = table
    return _huffman_codes


def huffman_decode(data: bytes) -> bytes:
    """Decode a Huffman-coded string; padding must be at most 7 one-bits."""
    table = _codes()
    out = bytearray()
    code = 0
    length = 0
    for byte in data:
        for shift in range(7, -1, -1):
            code = (code << 1) | ((byte >> shift) & 1)
            length += 1
            symbol = table.get((length, code)) if length >= 5 else None
            if symbol is not None:
                if symbol == _EOS:
                    raise HpackError("EOS symbol inside a Huffman string")
                out.append(symbol)
                code = 0
                length = 0
            elif length > 30:
                raise HpackError("invalid Huffman code")
    if length > 7 or code != (1 << length) - 1:
        raise HpackError("invalid Huffman padding")
    return bytes(out)


class Decoder:
    """One connection's decoding state (the dynamic table)."""

    def __init__(self, max_table_size: int = 4096) -> None:
        self._dynamic: list[tuple[str, str]] = []
        self._size = 0
        self._max = max_table_size
        self._limit = max_table_size

    def _entry(self, index: int) -> tuple[str, str]:
        if index <= 0:
            raise HpackError("header index 0")
        if index <= len(_STATIC):
            return _STATIC[index - 1]
        pos = index - len(_STATIC) - 1
        if pos >= len(self._dynamic):
            raise HpackError(f"header index {index} beyond the tables")
        return self._dynamic[pos]

    def _add(self, name: str, value: str) -> None:
        size = len(name.encode()) + len(value.encode()) + 32
        self._dynamic.insert(0, (name, value))
        self._size += size
        self._evict()

    def _evict(self) -> None:
        while self._size > self._max and self._dynamic:
            name, value = self._dynamic.pop()
            self._size -= len(name.encode()) + len(value.encode()) + 32

    @staticmethod
    def _integer(data: bytes, pos: int, prefix: int) -> tuple[int, int]:
        if pos >= len(data):
            raise HpackError("truncated integer")
        mask = (1 << prefix) - 1
        value = data[pos] & mask
        pos += 1
        if value < mask:
            return value, pos
        shift = 0
        while True:
            if pos >= len(data) or shift > 28:
                raise HpackError("truncated or oversized integer")
            byte = data[pos]
            pos += 1
            value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos

    def _string(self, data: bytes, pos: int) -> tuple[str, int]:
        if pos >= len(data):
            raise HpackError("truncated string")
        huffman = bool(data[pos] & 0x80)
        length, pos = self._integer(data, pos, 7)
        if pos + length > len(data):
            raise HpackError("truncated string")
        raw = data[pos : pos + length]
        text = huffman_decode(raw) if huffman else raw
        return text.decode("utf-8", "replace"), pos + length

    def decode(self, block: bytes) -> list[tuple[str, str]]:
        """Decode one complete header block (HEADERS + CONTINUATIONs)."""
        headers: list[tuple[str, str]] = []
        pos = 0
        while pos < len(block):
            byte = block[pos]
            if byte & 0x80:  # indexed field
                index, pos = self._integer(block, pos, 7)
                headers.append(self._entry(index))
                continue
            if byte & 0xE0 == 0x20:  # dynamic table size update
                size, pos = self._integer(block, pos, 5)
                if size > self._limit:
                    raise HpackError(f"table size {size} above the limit {self._limit}")
                self._max = size
                self._evict()
                continue
            indexing = bool(byte & 0x40)
            index, pos = self._integer(block, pos, 6 if indexing else 4)
            if index:
                name = self._entry(index)[0]
            else:
                name, pos = self._string(block, pos)
            value, pos = self._string(block, pos)
            if indexing:
                self._add(name, value)
            headers.append((name, value))
        return headers
