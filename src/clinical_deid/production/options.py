"""What one run of the production command is asked to do, as one object.

The CLI builds a `RunOptions` from its arguments; `deidentify_main` builds one from keywords.
`check` refuses, before the pipeline is loaded, what the run could not do safely.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Dict, Optional, Union

from ..label_map import read_label_map
from .errors import DeidError
from .paths import check_paths

# Documents per memory zone: strings that the tokenizer adds to the vocab while it reads a
# chunk are freed after it, so a run over millions of notes does not grow without bound.
CHUNK_SIZE = 10_000
KEY_ENV = "DEID_SURROGATE_KEY"
# A note longer than MAX_CHARS is cut into pieces (the tokenizer and the model see bounded
# texts); one longer than MAX_DOC_CHARS is reported as too large instead of processed.
MAX_CHARS = 100_000
MAX_DOC_CHARS = 10_000_000
STDIN_FORMATS = ("jsonl", "text")
ENGINES = ("local", "ray")
BLOCK_SIZE = 256  # documents per block handed to a worker (local processes or Ray actors)
MODES = ("redact", "mask", "pseudonymize")


@dataclass
class RunOptions:
    """One run: where from, where to, and how (the command's options, same names).

    input_path (str): a folder of .txt files, a .jsonl or .parquet file, or "-" for standard input.
    output_path (str): an output folder, a .jsonl file, or "-" for standard output.
    key (Optional[bytes]): the secret surrogate key (see keys.read_key); never printed.
    label_map (Union[str, Dict[str, str], None]): label -> kind over the pipeline's, a dict, a
        JSON file or inline JSON (see clinical_deid.label_map); read and checked by `check`.
    stdin / stdout (Optional[BinaryIO]): streams for "-" (default: the process's own).
    """

    input_path: str
    output_path: str
    text_field: str = "text"
    id_field: str = "id"
    spans_output: Optional[str] = None
    batch_size: int = 64
    n_process: int = 1
    mode: Optional[str] = None
    rules: bool = True
    seed: Optional[int] = None
    resume: bool = True
    stdin_format: str = "jsonl"
    encoding: str = "utf-8"
    silent: bool = False
    key: Optional[bytes] = field(default=None, repr=False)
    insecure_demo_key: bool = False
    patient_id_field: Optional[str] = None
    max_chars: int = MAX_CHARS
    max_doc_chars: int = MAX_DOC_CHARS
    label_map: Union[str, Dict[str, str], None] = None
    engine: str = "local"
    ray_address: Optional[str] = None
    block_size: int = BLOCK_SIZE
    threads: int = 0
    stdin: Optional[BinaryIO] = field(default=None, repr=False)
    stdout: Optional[BinaryIO] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.input_path, self.output_path = str(self.input_path), str(self.output_path)
        self.spans_output = str(self.spans_output) if self.spans_output else None

    @property
    def to_stdout(self) -> bool:
        return self.output_path == "-"

    @property
    def from_stdin(self) -> bool:
        return self.input_path == "-"

    @property
    def spans_path(self) -> Optional[Path]:
        """The spans file (None: no spans asked, or "-")."""
        return Path(self.spans_output) if self.spans_output and self.spans_output != "-" else None

    def check(self) -> None:
        """Raise DeidError for options no run can follow, and for outputs that would write over
        (or into) the input or each other."""
        if self.stdin_format not in STDIN_FORMATS:
            raise DeidError(f"unknown --stdin-format {self.stdin_format!r}: choose {' or '.join(STDIN_FORMATS)}")
        if self.engine not in ENGINES:
            raise DeidError(f"unknown --engine {self.engine!r}: choose {' or '.join(ENGINES)}")
        if self.n_process < 1 or self.block_size < 1 or self.threads < 0:
            raise DeidError(f"--n-process ({self.n_process}) and --block-size ({self.block_size}) must be positive, "
                            f"--threads ({self.threads}) not negative")
        if self.max_chars < 1 or self.max_doc_chars < 1:
            raise DeidError(f"--max-chars ({self.max_chars}) and --max-doc-chars ({self.max_doc_chars}) must be positive")
        check_paths(self.input_path, self.output_path, self.spans_output)
        try:
            self.label_map = read_label_map(self.label_map)
        except ValueError as err:
            raise DeidError(str(err)) from None

    def folder_input(self) -> bool:
        """Whether the input is a folder; DeidError when it is neither a folder, a file nor "-",
        or a folder whose output is standard output."""
        source = Path(self.input_path)
        is_folder = not self.from_stdin and source.is_dir()
        if not is_folder and not self.from_stdin and not source.is_file():
            raise DeidError(f"{self.input_path} is neither a folder of .txt files, a .jsonl or .parquet file nor -")
        if is_folder and self.to_stdout:
            raise DeidError("a folder input needs an output folder, not -")
        return is_folder
