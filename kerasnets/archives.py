"""Safe extraction of the checkpoint members of a downloaded `.tar.gz` (TF-slim's model zoo archives).

An archive from the network is untrusted input. `extract_checkpoint` refuses
the whole archive, naming the offending member, when any member

* has an absolute name, a ``..`` component or a name that would land outside
  the destination (tarfile's ``"data"`` filter checks this too);
* is not a regular file or directory: symbolic and hard links, character and
  block devices, FIFOs (a published checkpoint has no reason to hold them);
* is larger than `max_member_bytes`, or the members together exceed
  `max_total_bytes`, or there are more than `max_members` of them (a
  decompression bomb is stopped by the sizes the headers declare, before
  anything is written: `tarfile` never reads more than a member's declared size).

Only the checkpoint's own members are written: the V1 file ``<name>.ckpt``,
or a V2 checkpoint's ``<name>.ckpt.index`` and ``<name>.ckpt.data-K-of-N``;
the graphs and anything else in the archive are skipped.
"""

from __future__ import annotations

import gzip
import os
import posixpath
import re
import tarfile
import zlib

MAX_MEMBER_BYTES = 4 << 30  # the largest slim checkpoint (vgg_19.ckpt) is about 0.55 GB
MAX_TOTAL_BYTES = 8 << 30
MAX_MEMBERS = 10_000


class UnsafeArchiveError(ValueError):
    """The archive holds a member that is refused, or lacks the checkpoint asked for."""


def _normalized(name):
    """The member name without leading ``./``; the name as tar stores it is what is checked."""
    while name.startswith("./"):
        name = name[2:]
    return name


def _check_member(member, archive):
    name = member.name
    shown = f"{name!r} in {archive}"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or os.path.isabs(name):
        raise UnsafeArchiveError(f"Refusing archive member {shown}: absolute path")
    if ".." in re.split(r"[/\\]", name):
        raise UnsafeArchiveError(f"Refusing archive member {shown}: '..' in the path")
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"Refusing archive member {shown}: a {'symbolic' if member.issym() else 'hard'} "
                                 f"link (to {member.linkname!r})")
    if not (member.isreg() or member.isdir()):
        kind = ("character device" if member.ischr() else "block device" if member.isblk()
                else "FIFO" if member.isfifo() else f"tar type {member.type!r}")
        raise UnsafeArchiveError(f"Refusing archive member {shown}: a {kind}, not a regular file")


def _wanted(name, checkpoint):
    base = posixpath.basename(_normalized(name))
    return (base == checkpoint or base == f"{checkpoint}.index"
            or re.fullmatch(re.escape(checkpoint) + r"\.data-\d{5}-of-\d{5}", base) is not None)


def extract_checkpoint(archive, destination, checkpoint, *, max_member_bytes=MAX_MEMBER_BYTES,
                       max_total_bytes=MAX_TOTAL_BYTES, max_members=MAX_MEMBERS):
    """Extracts checkpoint `checkpoint` (a V1 file or V2 prefix name) from the `.tar.gz` `archive`.

    Args:
        archive: path of the archive (any compression `tarfile` reads).
        destination: an existing folder; the members are written flat into it.
        checkpoint: the checkpoint's file name in the archive, e.g. ``"resnet_v1_50.ckpt"``;
            matched on the member's base name, so ``model/x.ckpt`` is found too.
        max_member_bytes, max_total_bytes, max_members: the limits above.

    Returns:
        The path to give `weights_io.read_weights`: the V1 file, or the V2 prefix.

    Raises:
        UnsafeArchiveError: a refused member (named), or no such checkpoint in the
            archive (the checkpoint-like members it has are listed).
            A file that is no readable tar archive (a truncated download, an error
            page saved under the archive's name) raises it too.
    """
    try:
        return _extract(archive, destination, checkpoint, max_member_bytes, max_total_bytes, max_members)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise UnsafeArchiveError(f"{archive} is not a readable tar archive ({type(err).__name__}: {err}); delete "
                                 "it and fetch it again") from err


def _extract(archive, destination, checkpoint, max_member_bytes, max_total_bytes, max_members):
    archive = os.fspath(archive)
    destination = os.path.abspath(os.fspath(destination))
    total, wanted, seen = 0, [], set()
    with tarfile.open(archive, "r:*") as tar:
        for count, member in enumerate(tar, start=1):
            if count > max_members:
                raise UnsafeArchiveError(f"Refusing archive {archive}: more than {max_members} members")
            _check_member(member, archive)
            if member.size > max_member_bytes:
                raise UnsafeArchiveError(f"Refusing archive member {member.name!r} in {archive}: {member.size} "
                                         f"bytes, over the limit of {max_member_bytes}")
            total += member.size
            if total > max_total_bytes:
                raise UnsafeArchiveError(f"Refusing archive {archive}: its members exceed {max_total_bytes} bytes "
                                         f"in all (at member {member.name!r})")
            if member.isreg() and _wanted(member.name, checkpoint):
                base = posixpath.basename(_normalized(member.name))
                if base in seen:
                    raise UnsafeArchiveError(f"Refusing archive member {member.name!r} in {archive}: "
                                             f"{base!r} appears twice")
                seen.add(base)
                wanted.append(member)
        if not wanted:
            found = sorted(m.name for m in tar.getmembers() if ".ckpt" in m.name)[:10]
            raise UnsafeArchiveError(f"Archive {archive} has no checkpoint {checkpoint!r} (checkpoint-like "
                                     f"members: {found or 'none'})")
        for member in wanted:
            flat = member.replace(name=posixpath.basename(_normalized(member.name)), deep=False)
            # tarfile's own "data" filter as a second line: it also drops set-id bits and ownership
            # (Python >= 3.11.4; before, our checks above are the only line)
            extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extract(flat, destination, **extra)
    names = {posixpath.basename(_normalized(m.name)) for m in wanted}
    if f"{checkpoint}.index" in names:
        return os.path.join(destination, checkpoint)
    if checkpoint not in names:
        raise UnsafeArchiveError(f"Archive {archive} has data shards of {checkpoint!r} but no "
                                 f"{checkpoint}.index")
    return os.path.join(destination, checkpoint)
