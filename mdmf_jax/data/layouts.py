"""The folder layouts of this field, and listing a folder into labelled files.

Supported layouts (`<...>` is a folder name, `*` any file, also in sub-folders):

  cnnspot             root/<class>/0_real/*      root/<class>/1_fake/*
                      (CNNSpot / ProGAN training and validation sets; the
                      generator name is given by the user, e.g. "progan")
  generator           root/<generator>/0_real/*  root/<generator>/1_fake/*
  generator_class     root/<generator>/<class>/0_real/*  .../1_fake/*
  generator_realfake  root/<generator>/real/*    root/<generator>/fake/*

A file that does not fit the layout is never silently dropped: `scan` returns it as
a `Skipped` entry with the expected pattern in the reason.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Sequence

OUTSIDE_LAYOUT = "outside_layout"


@dataclasses.dataclass(frozen=True)
class Layout:
  """Folder components before the label folder, and the label folder names."""

  fields: tuple[str, ...]
  label_dirs: Mapping[str, int]

  @property
  def pattern(self) -> str:
    label = "|".join(self.label_dirs)
    return "/".join([f"<{f}>" for f in self.fields] + [label, "*"])


_BINARY = {"0_real": 0, "1_fake": 1}
LAYOUTS: Mapping[str, Layout] = {
    "cnnspot": Layout(("class",), _BINARY),
    "generator": Layout(("generator",), _BINARY),
    "generator_class": Layout(("generator", "class"), _BINARY),
    "generator_realfake": Layout(("generator",), {"real": 0, "fake": 1}),
}


@dataclasses.dataclass(frozen=True)
class FileEntry:
  """One image file of a layout. `relpath` is relative to the root, with '/'."""

  path: str
  relpath: str
  label: int  # 0 real, 1 fake
  generator: str
  class_name: str  # "" for layouts without a class folder


@dataclasses.dataclass(frozen=True)
class Skipped:
  """A file left out of a data set, with a reason code and a readable reason."""

  path: str
  code: str
  reason: str


def get_layout(name: str) -> Layout:
  if name not in LAYOUTS:
    raise ValueError(f"unknown layout {name!r}; choose one of {sorted(LAYOUTS)}")
  return LAYOUTS[name]


def scan(
    root: str,
    layout_name: str,
    *,
    generator: str | None = None,
    classes: Sequence[str] | None = None,
    generators: Sequence[str] | None = None,
) -> tuple[list[FileEntry], list[Skipped]]:
  """Lists every file under `root` as a FileEntry or a Skipped(outside_layout).

  Args:
    root: the folder to list.
    layout_name: a key of LAYOUTS.
    generator: generator name for layouts without a generator folder (cnnspot).
    classes: if given, only these class folders are read (e.g. the paper's
      ["car", "cat", "chair", "horse"]); each must exist.
    generators: if given, only these generator folders are read; each must exist.

  Returns:
    (entries sorted by (label, generator, class, relpath), skipped files).
    Files in class/generator folders that were not selected are neither.
  """
  layout = get_layout(layout_name)
  if not os.path.isdir(root):
    raise FileNotFoundError(f"root {root!r} is not a directory")
  has_generator = "generator" in layout.fields
  if has_generator == (generator is not None):
    raise ValueError(
        f"layout {layout_name!r}: "
        + ("generator names come from folders; do not pass generator="
           if has_generator else "pass generator=NAME (e.g. 'progan')")
    )
  wanted = {"class": classes, "generator": generators}
  for field, names in wanted.items():
    if names is not None and field not in layout.fields:
      raise ValueError(f"layout {layout_name!r} has no <{field}> folders")
  seen = {"class": set(), "generator": set()}
  entries, skipped = [], []
  depth = len(layout.fields)
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    rel_dir = os.path.relpath(dirpath, root)
    parts = [] if rel_dir == "." else rel_dir.split(os.sep)
    prefix = dict(zip(layout.fields, parts[:depth]))
    if any(wanted[f] is not None and v not in wanted[f] for f, v in prefix.items()):
      dirnames.clear()  # a folder the user did not select
      continue
    for field, value in prefix.items():
      seen[field].add(value)
    for filename in sorted(filenames):
      path = os.path.join(dirpath, filename)
      relpath = "/".join(parts + [filename])
      if len(parts) <= depth or parts[depth] not in layout.label_dirs:
        skipped.append(Skipped(path, OUTSIDE_LAYOUT,
                               f"expected {layout.pattern} under the root"))
        continue
      entries.append(FileEntry(
          path=path,
          relpath=relpath,
          label=layout.label_dirs[parts[depth]],
          generator=prefix.get("generator", generator),
          class_name=prefix.get("class", ""),
      ))
  for field, names in wanted.items():
    missing = sorted(set(names or ()) - seen[field])
    if missing:
      raise ValueError(
          f"{field} folders {missing} not found under {root!r} "
          f"(found: {sorted(seen[field])})"
      )
  entries.sort(key=lambda e: (e.label, e.generator, e.class_name, e.relpath))
  return entries, skipped
