"""Reading training data (and serving payloads) in the formats the container accepts.

The container resolves a channel's ContentType to one of four formats, checks the first line of
every file before loading anything (so a CSV sent as the default libsvm fails with a readable
message instead of garbage), then reads all files of a channel into one matrix. xgboost has
deprecated its own text readers, so CSV and LIBSVM are parsed here, into numpy and scipy arrays.
"""

from __future__ import annotations

import csv
import logging
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import xgboost
from scipy.sparse import csr_matrix

from emulation.containers.xgboost import UserError

logger = logging.getLogger(__name__)

CSV = "csv"
LIBSVM = "libsvm"
PARQUET = "parquet"
RECORDIO_PROTOBUF = "recordio-protobuf"

_FORMATS = {
    "csv": CSV,
    "text/csv": CSV,
    "libsvm": LIBSVM,
    "text/libsvm": LIBSVM,
    "text/x-libsvm": LIBSVM,
    "parquet": PARQUET,
    "application/x-parquet": PARQUET,
    "recordio-protobuf": RECORDIO_PROTOBUF,
    "application/x-recordio-protobuf": RECORDIO_PROTOBUF,
}
_ACCEPTED = (
    "csv, libsvm, parquet, recordio-protobuf, text/csv, text/libsvm, text/x-libsvm, "
    "application/x-parquet, application/x-recordio-protobuf"
)
#: Files nested deeper than this below a channel directory are not read (as in the real container).
MAX_FOLDER_DEPTH = 3


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split ``text/csv; label_size=1`` into ``("text/csv", {"label_size": "1"})``, lower-cased."""
    kind, *parameters = value.lower().split(";")
    parsed = {}
    for parameter in parameters:
        key, _, item = parameter.partition("=")
        parsed[key.strip()] = item.strip().strip('"')
    return kind.strip(), parsed


def data_format(content_type: str | None) -> str:
    """The format a ContentType names; a channel without one is libsvm, the container's default."""
    if content_type is None:
        return LIBSVM
    kind, parameters = parse_media_type(content_type)
    data_format = _FORMATS.get(kind)
    if data_format is None:
        raise UserError(f"{content_type} is not an accepted ContentType: {_ACCEPTED}.")
    if data_format == CSV and parameters.get("label_size", "1") != "1":
        raise UserError(
            f"{content_type} is not an accepted csv ContentType. Optional parameter label_size must be equal to 1"
        )
    return data_format


def channel_files(channel_dir: Path) -> list[Path]:
    """The data files of a channel: nested up to three levels, skipping names that start with . or _."""
    found: list[Path] = []

    def walk(directory: Path, depth: int) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith((".", "_")):
                continue
            if entry.is_file():
                found.append(entry)
            elif entry.is_dir():
                if depth < MAX_FOLDER_DEPTH:
                    walk(entry, depth + 1)
                else:
                    logger.warning(
                        f"The depth of folder {channel_dir} exceed the limit {MAX_FOLDER_DEPTH}. Files in deeper "
                        "sub dirs won't be loaded. Please adjust the folder structure accordingly."
                    )

    if channel_dir.is_dir():
        walk(channel_dir, 1)
    return found


def _first_line(path: Path) -> str:
    with open(path, errors="ignore") as stream:
        return stream.readline()


def _csv_delimiter(line: str) -> str:
    try:
        delimiter = csv.Sniffer().sniff(line).delimiter
    except csv.Error as error:
        raise UserError(f"Could not determine delimiter on line {line[:50]}:\n{error}") from None
    logger.info(f"Determined delimiter of CSV input is '{delimiter}'")
    return delimiter


def _libsvm_feature_count(line: str) -> int:
    """How many ``<index>:<value>`` pairs follow a valid ``<label>[:<weight>]``; -1 if the line is not LIBSVM."""
    label, *features = line.split()
    parts = label.split(":")
    try:
        [float(part) for part in parts]
    except ValueError:
        return -1
    if len(parts) > 2 or not all(feature.count(":") == 1 for feature in features):
        return -1
    return len(features)


def validate_files(files: list[Path], data_format: str) -> None:
    """Check each file's first line(s) against the format before reading any data.

    For LIBSVM the container reads on until a line with more than one feature, so a file of
    label-only lines passes with a warning.
    """
    for path in files:
        if not path.stat().st_size:
            continue
        if data_format == CSV:
            _csv_delimiter(_first_line(path))
        elif data_format == LIBSVM:
            with open(path, errors="ignore") as stream:
                for line in stream:
                    if not line.strip():
                        continue
                    count = _libsvm_feature_count(line)
                    if count < 0:
                        raise UserError(
                            f"First line '{line[:50]}...' of file '{path.name}' is not 'LIBSVM' format. "
                            "Please ensure the file is in 'LIBSVM' format."
                        )
                    if count > 1:
                        break
                else:
                    logger.warning(
                        f"File {path.name} is not an invalid LIBSVM file but has no features. "
                        "Accepting simple validation."
                    )


def load(files: list[Path], data_format: str, csv_weights: int = 0):
    """Read a channel's files into one ``xgboost.DMatrix`` (label first; weight second with csv_weights=1)."""
    if data_format == CSV:
        table = _read_csv(files)
        first_feature = 2 if csv_weights == 1 else 1
        return xgboost.DMatrix(
            table[:, first_feature:],
            label=table[:, 0],
            weight=table[:, 1] if csv_weights == 1 else None,
            missing=math.nan,
        )
    if data_format == LIBSVM:
        features, labels, weights, qids = _read_libsvm(files)
        return xgboost.DMatrix(features, label=labels, weight=weights, qid=qids)
    if data_format == PARQUET:
        table = _read_parquet(files)
        return xgboost.DMatrix(table[:, 1:], label=table[:, 0], missing=math.nan)
    features, labels = _read_recordio(files)
    return xgboost.DMatrix(features, label=labels, missing=math.nan)


def _read_csv(files: list[Path]) -> np.ndarray:
    files = [path for path in files if path.stat().st_size]
    delimiter = _csv_delimiter(_first_line(files[0]))
    try:
        tables = [_csv_table(path, delimiter) for path in files]
        if len({table.shape[1] for table in tables}) > 1:
            raise ValueError("the files of the channel have different numbers of columns")
        return np.concatenate(tables)
    except ValueError as error:
        raise UserError(f"Failed to load csv data with exception:\n{error}") from None


def _csv_table(path: Path, delimiter: str) -> np.ndarray:
    """numpy's C parser first; blank cells (missing values) need the slower per-cell fallback."""
    try:
        return np.loadtxt(path, delimiter=delimiter, dtype=np.float32, ndmin=2, comments=None)
    except ValueError:
        rows = [
            [float(cell) if cell.strip() else math.nan for cell in line.split(delimiter)]
            for line in path.read_text(errors="ignore").splitlines()
            if line.strip()
        ]
        return np.array(rows, dtype=np.float32).reshape(len(rows), -1)


def _read_libsvm(files: list[Path]):
    labels: list[float] = []
    weights: list[float] = []
    qids: list[int] = []
    indices: list[int] = []
    values: list[float] = []
    indptr = [0]
    try:
        for path in files:
            for line in path.read_text(errors="ignore").splitlines():
                fields = line.split("#", 1)[0].split()
                if not fields:
                    continue
                label, *tokens = fields
                value, _, weight = label.partition(":")
                labels.append(float(value))
                weights.append(float(weight) if weight else 1.0)
                for token in tokens:
                    key, _, item = token.partition(":")
                    if key == "qid":
                        qids.append(int(item))
                    else:
                        indices.append(int(key))
                        values.append(float(item))
                indptr.append(len(indices))
    except ValueError as error:
        raise UserError(f"Failed to load libsvm data with exception:\n{error}") from None
    if qids and len(qids) != len(labels):
        raise UserError(
            "Failed to load libsvm data with exception:\nqid must be given for every row or for none"
        )
    width = max(indices) + 1 if indices else 0
    features = csr_matrix(
        (
            np.array(values, dtype=np.float32),
            np.array(indices, dtype=np.int64),
            np.array(indptr, dtype=np.int64),
        ),
        shape=(len(labels), width),
    )
    has_weights = any(weight != 1.0 for weight in weights)
    return (
        features,
        np.array(labels),
        np.array(weights) if has_weights else None,
        np.array(qids) if qids else None,
    )


def _read_parquet(files: list[Path]) -> np.ndarray:
    try:
        import pyarrow.parquet
    except ImportError as error:
        raise UserError(
            "Failed to load parquet data with exception:\n"
            f"reading parquet needs pyarrow, which is not installed here ({error})"
        ) from None
    try:
        tables = [pyarrow.parquet.read_table(path).to_pandas().to_numpy(dtype=np.float32) for path in files]
        return np.concatenate(tables)
    except Exception as error:
        raise UserError(f"Failed to load parquet data with exception:\n{error}") from None


def _read_recordio(files: list[Path]):
    try:
        features, labels = decode_recordio_protobuf(b"".join(path.read_bytes() for path in files))
    except ValueError as error:
        raise UserError(f"Failed to load recordio-protobuf data with exception:\n{error}") from None
    if labels is None:
        raise UserError("Failed to load recordio-protobuf data with exception:\nthe records have no label")
    return features, labels


# RecordIO-protobuf (the SageMaker "Record" message in RecordIO framing), written out by hand so
# that neither protobuf nor mxnet is needed. Each record is <magic><length><message, padded to 4>.
_RECORDIO_MAGIC = 0xCED7230A
_TENSOR_DTYPES = {2: "<f4", 3: "<f8", 7: "int32"}  # Value.float32_tensor / float64_tensor / int32_tensor


def _varint(buffer: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(buffer):
            raise ValueError("truncated protobuf varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def _fields(message: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for each field of a protobuf message."""
    position = 0
    while position < len(message):
        key, position = _varint(message, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _varint(message, position)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, position = message[position : position + size], position + size
        elif wire_type == 2:
            size, position = _varint(message, position)
            value, position = message[position : position + size], position + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        yield number, wire_type, value


def _varints(packed: bytes) -> list[int]:
    values, position = [], 0
    while position < len(packed):
        value, position = _varint(packed, position)
        values.append(value)
    return values


def _tensor(value_message: bytes) -> tuple[np.ndarray, list[int], list[int]]:
    """A ``Value`` message's tensor as (values, keys, shape); keys are set for sparse rows."""
    for kind, _, tensor in _fields(value_message):
        if kind not in _TENSOR_DTYPES:
            continue
        dtype = _TENSOR_DTYPES[kind]
        values: list[np.ndarray] = []
        keys: list[int] = []
        shape: list[int] = []
        for number, wire_type, item in _fields(tensor):
            if number == 1 and dtype == "int32":
                ints = _varints(item) if wire_type == 2 else [item]
                values.append(np.array([value - (1 << 64) if value >= 1 << 63 else value for value in ints]))
            elif number == 1:
                values.append(np.frombuffer(item, dtype=dtype))
            elif number in (2, 3):
                target = keys if number == 2 else shape
                target.extend(_varints(item) if wire_type == 2 else [item])
        return (np.concatenate(values) if values else np.empty(0)), keys, shape
    raise ValueError("the record holds a value that is not a numeric tensor")


def _map_entries(entry_messages: list[bytes]) -> dict[str, bytes]:
    entries = {}
    for entry in entry_messages:
        fields = {number: value for number, _, value in _fields(entry)}
        entries[bytes(fields.get(1, b"")).decode()] = fields.get(2, b"")
    return entries


def _recordio_records(payload: bytes) -> Iterator[bytes]:
    position = 0
    while position < len(payload):
        if position + 8 > len(payload):
            raise ValueError("truncated RecordIO header")
        magic, length = struct.unpack_from("<II", payload, position)
        if magic != _RECORDIO_MAGIC:
            raise ValueError("invalid RecordIO magic number")
        length &= (1 << 29) - 1
        start = position + 8
        if start + length > len(payload):
            raise ValueError("truncated RecordIO record")
        yield payload[start : start + length]
        position = start + ((length + 3) & ~3)


def decode_recordio_protobuf(payload: bytes):
    """Decode RecordIO-protobuf records into (features, labels or None).

    Features come back as a dense array when every record is dense, else as a CSR matrix in
    which absent entries are missing values.
    """
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    labels: list[float] = []
    width, dense = 0, True
    for record in _recordio_records(payload):
        features: list[bytes] = []
        label: list[bytes] = []
        for number, _, value in _fields(record):
            if number == 1:
                features.append(value)
            elif number == 2:
                label.append(value)
        feature_values = _map_entries(features)
        if "values" not in feature_values:
            raise ValueError("a record has no 'values' feature")
        values, keys, shape = _tensor(feature_values["values"])
        if keys:
            dense = False
            columns = np.array(keys, dtype=np.int64)
        else:
            columns = np.arange(len(values), dtype=np.int64)
        width = max(width, shape[0] if shape else len(values), int(columns.max()) + 1 if len(columns) else 0)
        rows.append((columns, values.astype(np.float32)))
        label_values = _map_entries(label)
        if "values" in label_values:
            labels.append(float(_tensor(label_values["values"])[0][0]))
    if labels and len(labels) != len(rows):
        raise ValueError("some records have a label and others do not")
    if dense and len({len(values) for _, values in rows}) <= 1:
        features = np.array([values for _, values in rows], dtype=np.float32).reshape(len(rows), width)
    else:
        indptr = np.cumsum([0] + [len(columns) for columns, _ in rows])
        features = csr_matrix(
            (np.concatenate([v for _, v in rows]), np.concatenate([c for c, _ in rows]), indptr),
            shape=(len(rows), width),
        )
    return features, (np.array(labels, dtype=np.float32) if labels else None)


def _length_delimited(number: int, payload: bytes) -> bytes:
    def varint(value: int) -> bytes:
        out = bytearray()
        while value >= 0x80:
            out.append(value & 0x7F | 0x80)
            value >>= 7
        out.append(value)
        return bytes(out)

    return varint(number << 3 | 2) + varint(len(payload)) + payload


def encode_recordio_protobuf(predictions: np.ndarray) -> bytes:
    """One record per prediction, its scores in ``label["score"]`` as a float32 tensor."""
    out = bytearray()
    for prediction in predictions:
        tensor = _length_delimited(1, np.atleast_1d(prediction).astype("<f4").tobytes())
        entry = _length_delimited(1, b"score") + _length_delimited(2, _length_delimited(2, tensor))
        record = _length_delimited(2, entry)
        out += struct.pack("<II", _RECORDIO_MAGIC, len(record)) + record + b"\0" * (-len(record) % 4)
    return bytes(out)
