"""SentencePiece model files (`sentencepiece.bpe.model`): a protobuf `ModelProto`, read with a small wire-format
reader, so ved needs neither the sentencepiece nor the protobuf package."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from vedcli.errors import ModelError

SPM_NORMAL, SPM_UNKNOWN, SPM_CONTROL, SPM_USER_DEFINED, SPM_UNUSED, SPM_BYTE = 1, 2, 3, 4, 5, 6  # piece types
SPM_UNIGRAM, SPM_BPE = 1, 2  # trainer model types


class SentencePiece(NamedTuple):
    """One vocabulary entry of a SentencePiece model (a tuple: models have tens of thousands)."""

    piece: str
    score: float = 0.0
    type: int = SPM_NORMAL  # one of the SPM_* piece types


@dataclass
class SentencePieceModel:
    """The parts of a SentencePiece `ModelProto` a tokenizer needs (field numbers from sentencepiece_model.proto)."""

    pieces: list[SentencePiece] = field(default_factory=list)  # ModelProto.pieces = 1
    model_type: int = SPM_UNIGRAM  # TrainerSpec.model_type = 3
    unk_id: int = 0  # TrainerSpec.unk_id = 40
    bos_id: int = 1  # TrainerSpec.bos_id = 41
    eos_id: int = 2  # TrainerSpec.eos_id = 42
    pad_id: int = -1  # TrainerSpec.pad_id = 43
    byte_fallback: bool = False  # TrainerSpec.byte_fallback = 35
    precompiled_charsmap: bytes = b""  # NormalizerSpec.precompiled_charsmap = 2


class _ProtoError(ValueError):
    """A byte string that is not a well-formed protobuf message."""


_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5  # protobuf wire types


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode one base-128 varint at `pos`; returns (value, next position)."""
    if pos < len(data) and data[pos] < 0x80:  # one byte: the common case
        return data[pos], pos + 1
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise _ProtoError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 70:
            raise _ProtoError("varint longer than 10 bytes")


def _proto_fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field of a message; ints for varints, bytes otherwise."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _ProtoError("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(data, pos)
            yield number, wire, value
            continue
        if wire == _BYTES:
            size, pos = _read_varint(data, pos)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        if pos + size > len(data):
            raise _ProtoError("field runs past the end of the data")
        yield number, wire, data[pos : pos + size]
        pos += size


def _int32(value: int) -> int:
    """A varint read as a signed 32-bit int (negative ints are written as 64-bit two's complement)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _expect(wire: int, expected: int, what: str) -> None:
    if wire != expected:
        raise _ProtoError(f"{what} has wire type {wire}, expected {expected}")


_FLOAT = struct.Struct("<f")


def _parse_piece(data: bytes) -> SentencePiece:
    # Fast path for the layout sentencepiece writes: 0x0A len piece, 0x15 score, [0x18 type] (type < 128)
    size = len(data)
    if size >= 7 and data[0] == 0x0A and data[1] < 0x80:
        end = 2 + data[1]
        if end + 5 <= size and data[end] == 0x15:
            score = _FLOAT.unpack_from(data, end + 1)[0]
            if end + 5 == size:
                return SentencePiece(data[2:end].decode("utf-8"), score)
            if end + 7 == size and data[end + 5] == 0x18 and data[end + 6] < 0x80:
                return SentencePiece(data[2:end].decode("utf-8"), score, data[end + 6])
    piece, score, kind = "", 0.0, SPM_NORMAL
    for number, wire, value in _proto_fields(data):
        if number == 1:
            _expect(wire, _BYTES, "piece")
            piece = value.decode("utf-8")  # type: ignore[union-attr]
        elif number == 2:
            _expect(wire, _FIXED32, "score")
            score = _FLOAT.unpack(value)[0]  # type: ignore[arg-type]
        elif number == 3:
            _expect(wire, _VARINT, "type")
            kind = int(value)  # type: ignore[arg-type]
    return SentencePiece(piece, score, kind)


def parse_sentencepiece_model(data: bytes) -> SentencePieceModel:
    """Parse the bytes of a SentencePiece `.model` file; raises ValueError on malformed data."""
    model = SentencePieceModel()
    trainer_ints = {3: "model_type", 40: "unk_id", 41: "bos_id", 42: "eos_id", 43: "pad_id"}
    try:
        for number, wire, value in _proto_fields(data):
            if number == 1:
                _expect(wire, _BYTES, "pieces")
                model.pieces.append(_parse_piece(value))  # type: ignore[arg-type]
            elif number == 2:
                _expect(wire, _BYTES, "trainer_spec")
                for sub, sub_wire, sub_value in _proto_fields(value):  # type: ignore[arg-type]
                    if sub in trainer_ints:
                        _expect(sub_wire, _VARINT, trainer_ints[sub])
                        setattr(model, trainer_ints[sub], _int32(sub_value))  # type: ignore[arg-type]
                    elif sub == 35:
                        _expect(sub_wire, _VARINT, "byte_fallback")
                        model.byte_fallback = bool(sub_value)
            elif number == 3:
                _expect(wire, _BYTES, "normalizer_spec")
                for sub, sub_wire, sub_value in _proto_fields(value):  # type: ignore[arg-type]
                    if sub == 2:
                        _expect(sub_wire, _BYTES, "precompiled_charsmap")
                        model.precompiled_charsmap = bytes(sub_value)  # type: ignore[arg-type]
    except UnicodeDecodeError as err:
        raise _ProtoError("a piece is not valid UTF-8") from err
    if not model.pieces:
        raise _ProtoError("no vocabulary pieces")
    if not 0 <= model.unk_id < len(model.pieces):
        raise _ProtoError(f"unk_id {model.unk_id} outside the {len(model.pieces)} pieces")
    return model


def read_sentencepiece_model(path: str | Path) -> SentencePieceModel:
    """Read a SentencePiece `.model` file; raises ModelError (where=path) when it is missing or malformed."""
    path = Path(path)
    try:
        return parse_sentencepiece_model(path.read_bytes())
    except OSError as err:
        raise ModelError(f"cannot read sentencepiece model: {err.strerror or err}", where=str(path)) from err
    except _ProtoError as err:
        raise ModelError(f"not a valid sentencepiece model: {err}", where=str(path)) from err
