"""qt_rcc: bundles written here following Qt's binary resource format are read back."""

import struct
import zlib

import pytest

from mdmf_jax.data import qt_rcc


def _hash(name: str) -> int:
  """Qt's qt_hash, written out from Qt's source (qresource.cpp / rcc.cpp)."""
  h = 0
  for ch in name:
    h = ((h << 4) + ord(ch)) & 0xFFFFFFFF
    h ^= (h & 0xF0000000) >> 23
    h &= 0x0FFFFFFF
  return h


def write_rcc(files: dict[str, tuple[bytes, str]], version: int = 3,
              corrupt_hash_of: str | None = None) -> bytes:
  """An .rcc bundle as Qt's `rcc --binary` lays it out.

  Args:
    files: path -> (content, compression "none" | "zlib" | "zstd": the payload of
      a "zstd" entry is stored as given, already compressed).
    version: the format version (1, 2 or 3).
    corrupt_hash_of: a name whose stored hash is made wrong.
  """
  tree: dict = {}
  for path, value in files.items():
    node = tree
    *dirs, leaf = path.split("/")
    for d in dirs:
      node = node.setdefault(d, {})
    node[leaf] = value
  names = bytearray()
  name_offsets: dict[str, int] = {}

  def name_offset(name: str) -> int:
    if name not in name_offsets:
      name_offsets[name] = len(names)
      stored = _hash(name) ^ (1 if name == corrupt_hash_of else 0)
      names.extend(struct.pack(">HI", len(name), stored) + name.encode("utf-16-be"))
    return name_offsets[name]

  data = bytearray()
  nodes: list[bytes] = []
  node_tail = b"" if version == 1 else struct.pack(">Q", 0)  # last-modified (ms)
  # Breadth first: a directory's children are consecutive and sorted by hash.
  nodes.append(b"")
  queue = [(0, tree)]
  while queue:
    index, directory = queue.pop(0)
    children = sorted(directory, key=_hash)
    first = len(nodes)
    if index == 0:  # the root; its name offset is unused
      nodes[0] = struct.pack(">IHII", 0, 0x02, len(children), first) + node_tail
    nodes.extend(b"" for _ in children)
    for i, name in enumerate(children):
      value = directory[name]
      if isinstance(value, dict):
        nodes[first + i] = struct.pack(">IHII", name_offset(name), 0x02, len(value),
                                       0) + node_tail
        queue.append((first + i, value))
      else:
        content, compression = value
        flags = {"none": 0, "zlib": 0x01, "zstd": 0x04}[compression]
        payload = (struct.pack(">I", len(content)) + zlib.compress(content)
                   if compression == "zlib" else content)
        nodes[first + i] = struct.pack(">IHHHI", name_offset(name), flags, 0, 0,
                                       len(data)) + node_tail
        data.extend(struct.pack(">I", len(payload)) + payload)
    if index != 0:  # now that the children have indices, fill the parent's pointer
      name_off, flags, count, _ = struct.unpack(">IHII", nodes[index][:14])
      nodes[index] = struct.pack(">IHII", name_off, flags, count, first) + node_tail
  header_size = 20 if version < 3 else 24
  tree_bytes = b"".join(nodes)
  tree_offset = header_size
  data_offset = tree_offset + len(tree_bytes)
  names_offset = data_offset + len(data)
  header = b"qres" + struct.pack(">IIII", version, tree_offset, data_offset, names_offset)
  if version >= 3:
    header += struct.pack(">I", 0)
  return header + tree_bytes + bytes(data) + bytes(names)


FILES = {
    "gcompris/src/a/resource/cat.webp": (b"RIFF....WEBPcat" * 7, "none"),
    "gcompris/src/a/resource/dog.webp": (bytes(range(256)) * 3, "zlib"),
    "gcompris/src/b/notes.txt": ("caf\u00e9 \u00fcber".encode(), "zlib"),
    "top.qml": (b"", "none"),
    "d\u00e9j\u00e0/\u00e9t\u00e9.png": (b"\x89PNG fake", "none"),
}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_round_trip(version):
  bundle = qt_rcc.RccBundle(write_rcc(FILES, version=version), name="x.rcc")
  assert bundle.version == version
  assert bundle.paths == sorted(FILES)
  for path, (content, compression) in FILES.items():
    assert bundle.read(path) == content
    assert bundle.entries[path].compression == compression


def test_qt_hash_matches_reference():
  for name in ["", "a", "ab", "resource", "explore_world_animals", "d\u00e9j\u00e0" * 5]:
    assert qt_rcc.qt_hash(name) == _hash(name)
  assert qt_rcc.qt_hash("ab") == 0x672  # (0x61 << 4) + 0x62


def test_from_file(tmp_path):
  path = tmp_path / "bundle.rcc"
  path.write_bytes(write_rcc(FILES))
  assert qt_rcc.RccBundle.from_file(str(path)).read("top.qml") == b""


def test_zstd_entry():
  try:
    import zstandard  # pylint: disable=import-outside-toplevel
  except ImportError:
    zstandard = None
  content = b"zstd content " * 10
  payload = zstandard.ZstdCompressor().compress(content) if zstandard else b"\x28\xb5\x2f\xfd"
  bundle = qt_rcc.RccBundle(write_rcc({"z.bin": (payload, "zstd")}), name="z.rcc")
  assert bundle.entries["z.bin"].compression == "zstd"
  if zstandard:
    assert bundle.read("z.bin") == content
  else:
    with pytest.raises(qt_rcc.RccError, match="z.rcc: z.bin is zstd-compressed; pip install"):
      bundle.read("z.bin")


def _patched(data: bytes, offset: int, new: bytes) -> bytes:
  return data[:offset] + new + data[offset + len(new):]


def test_malformed_bundles_name_the_file():
  good = write_rcc(FILES)
  tree_offset, data_offset, names_offset = struct.unpack_from(">III", good, 8)
  cases = {
      "not a Qt resource bundle": b"PK\x03\x04" + good[4:],
      "unsupported rcc format version 9": _patched(good, 4, struct.pack(">I", 9)),
      "outside the bundle": good[:names_offset + 3],
      "corrupt name table": write_rcc(FILES, corrupt_hash_of="resource"),
      # The root's first child pointing back at the root: a cycle.
      "reached twice": _patched(good, tree_offset + 10, struct.pack(">I", 0)),
      "should be a directory": _patched(good, tree_offset + 4, struct.pack(">H", 0)),
  }
  for message, data in cases.items():
    with pytest.raises(qt_rcc.RccError, match=message) as error:
      qt_rcc.RccBundle(data, name="broken.rcc")
    assert str(error.value).startswith("broken.rcc: ")
  assert issubclass(qt_rcc.RccError, ValueError)


def test_corrupt_entries():
  only = {"a.txt": (b"hello world" * 20, "zlib")}
  good = write_rcc(only)
  _, data_offset, _ = struct.unpack_from(">III", good, 8)
  stream_start = data_offset + 4 + 4  # entry length, then qCompress's length prefix
  garbled = _patched(good, stream_start, b"\xff\xff")
  with pytest.raises(qt_rcc.RccError, match="a.txt: corrupt zlib data"):
    qt_rcc.RccBundle(garbled, name="g.rcc").read("a.txt")
  wrong_length = _patched(good, data_offset + 4, struct.pack(">I", 5))
  with pytest.raises(qt_rcc.RccError, match="header says 5"):
    qt_rcc.RccBundle(wrong_length, name="g.rcc").read("a.txt")
  with pytest.raises(qt_rcc.RccError, match="no file 'b.txt'"):
    qt_rcc.RccBundle(good, name="g.rcc").read("b.txt")
