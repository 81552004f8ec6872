"""The grading kernel's test verifier: a thread that alone holds the key that proves a test passed.

The grader sends each test cell as text that starts with a marker line carrying the test's id and
an HMAC of the rest (``TEST_MARK``) and ends with a *sentinel*, ``(lambda: "aifkit-end <id>")
.__code__ and None``, whose ``__code__`` read is an audit event. The guard's audit hook (see
``aifkit.guard``) hands three kinds of events to this thread and waits for its answer:

- ``text``: IPython compiles a cell whose text starts with the marker. The HMAC must match (an
  input transformer that changed one character fails it); the verifier then compiles the text
  itself, statement by statement as IPython does, to know the code that must run;
- ``exec``: a code object of a notebook cell runs. For a test, it must be the next of those
  statements, run by IPython with no learner code beneath it (not replayed by learner code, not
  rewritten by an AST transformer);
- ``end``: the sentinel. It must be read by the frame of the test's last statement, after every
  statement before it ran as compiled. Only then the verifier appends ``<id> <proof>`` (and the
  test's partial score, when its last line is a value) to the proofs file the grader reads, where
  ``proof`` is an HMAC of the id: learner code cannot make one without the key.

The key is read from a file the launcher deletes before ipykernel starts; it lives only in this
thread's frames, which learner code cannot list (``sys._current_frames`` and ``gc`` are refused
by the guard). Everything this thread calls is bound when it starts, C functions only, so
patching a module later cannot run learner code here. What this does not cover is in
docs/grading.md ("Threat model").
"""

from __future__ import annotations

import _thread
import os
import sys
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

TEST_MARK = "# aifkit-test "
END_MARK = "aifkit-end "
COMPARE_MARK = "aifkit-compare"  # a test's comparison: the guard checks its operands first
CALL_MARK = "aifkit-call"  # a test's call: the guard checks the callee and its arguments
KEY_FILE = "guard.key"
PROOFS_FILE = "guard.proofs"
HMAC_DIGEST = "sha256"
PROOF_CHARS = 32

Ask = Callable[[str, Any], str]


def mac(key: bytes, test_id: str, body: str) -> str:
    """The HMAC the grader puts on a test cell's text (``body``: the text after the marker)."""
    import hmac

    message = f"{test_id}\n{body.rstrip()}".encode()
    return hmac.new(key, message, HMAC_DIGEST).hexdigest()


def proof(key: bytes, test_id: str) -> str:
    """What the verifier writes for a test that ran to its end (the grader recomputes it)."""
    import hmac

    return hmac.new(key, f"end:{test_id}".encode(), HMAC_DIGEST).hexdigest()[:PROOF_CHARS]


def start(
    key: bytes, proofs_fd: int, trusted_file: Callable[[str], bool], hook_code: CodeType
) -> tuple[Ask, int]:
    """Start the verifier thread; returns ``ask(kind, payload) -> answer`` and its thread id.

    ``ask`` blocks until the verifier answered: "ok", or "refuse: <why>" for a test text whose
    HMAC is wrong. ``hook_code`` is the audit hook's code, to find the asking frame.
    """
    from _hashlib import compare_digest, hmac_digest

    # Bound now: module globals and builtins are looked up at call time, and learner code may
    # replace them (``builtins.float``, ``aifkit.verifier.TEST_MARK``). Only C functions below.
    compile_, type_, len_, zip_, str_, bytes_, float_ = compile, type, len, zip, str, bytes, float
    repr_, failure = repr, BaseException
    code_type, current_frames, write = CodeType, sys._current_frames, os.write
    flags_of = type.__dict__["__flags__"].__get__  # not a metaclass's __getattribute__
    test_mark, digest, chars, heap = TEST_MARK, HMAC_DIGEST, PROOF_CHARS, HEAPTYPE
    lock = _thread.allocate_lock
    ask_lock, request_ready, answer_ready = lock(), lock(), lock()
    request_ready.acquire()
    answer_ready.acquire()
    slot: list[Any] = [None, None]
    tests: dict[str, dict[str, Any]] = {}

    def same_code(a: CodeType, b: CodeType) -> bool:
        if a.co_code != b.co_code or a.co_names != b.co_names:
            return False
        if len_(a.co_consts) != len_(b.co_consts):
            return False
        for x, y in zip_(a.co_consts, b.co_consts):
            if type_(x) is code_type:
                if type_(y) is not code_type or not same_code(x, y):
                    return False
            elif type_(x) is not type_(y) or x != y:
                return False
        return True

    def asking_frame(thread: int) -> FrameType | None:
        """The frame whose code caused the event: the one beneath the hook's frame."""
        frame = current_frames().get(thread)
        while frame is not None and frame.f_code is not hook_code:
            frame = frame.f_back
        return frame.f_back if frame is not None else None

    def only_trusted_beneath(frame: FrameType | None) -> bool:
        while frame is not None:
            if not trusted_file(frame.f_code.co_filename):
                return False
            frame = frame.f_back
        return True

    def on_text(thread: int, source: Any, filename: Any) -> str:
        if type_(source) is bytes_:
            source = source.decode("utf-8", "replace")
        if type_(source) is not str_ or type_(filename) is not str_:
            return "ok"
        first, _, body = source.partition("\n")
        fields = first[len_(test_mark) :].split(" ")
        if len_(fields) != 2:
            return "refuse: the test cell's marker was changed"
        test_id, signature = fields
        expected = hmac_digest(key, (test_id + "\n" + body.rstrip()).encode(), digest).hex()
        if not compare_digest(expected, signature):
            return "refuse: the test cell was changed before it ran"
        if not only_trusted_beneath(asking_frame(thread)):
            return "refuse: a test cell compiled by learner code"
        try:  # the grader sends a test as one statement: IPython runs it as one code object
            code = compile_(source, filename, "exec")
        except SyntaxError:
            return "ok"  # it fails in IPython too, and never proves anything
        tests[filename] = {"id": test_id, "code": code, "runs": 0, "tainted": ""}
        return "ok"

    def on_exec(thread: int, code: Any) -> str:
        filename: Any = code.co_filename if type_(code) is code_type else None
        test = tests.get(filename) if type_(filename) is str_ else None  # never a str subclass
        if test is None:
            return "ok"
        test["runs"] += 1
        if test["runs"] > 1 or not same_code(code, test["code"]):
            test["tainted"] = "its code was changed or run twice"
        elif not only_trusted_beneath(asking_frame(thread)):
            test["tainted"] = "it was run by learner code"
        return "ok"

    def on_end(thread: int, function: Any) -> str:
        frame = asking_frame(thread)
        if frame is None:
            return "ok"
        filename = frame.f_code.co_filename
        test = tests.get(filename) if type_(filename) is str_ else None
        if test is None or test["tainted"] or test["runs"] != 1:
            return "ok"
        if not same_code(frame.f_code, test["code"]):
            return "ok"
        if not only_trusted_beneath(frame.f_back):
            return "ok"
        del tests[filename]
        test_id = test["id"]
        line = test_id + " " + hmac_digest(key, ("end:" + test_id).encode(), digest).hex()[:chars]
        defaults = function.__defaults__
        if defaults and defaults[0] is not None:  # None: no value shown, as in nbgrader
            value = defaults[0]
            number = "not-a-number"
            if flags_of(type_(value)) & heap == 0:  # a C type's value: no learner method runs
                try:
                    number = repr_(float_(value))
                except failure:  # any failure: no score, and the thread lives on
                    number = "not-a-number"
            line += " " + number
        write(proofs_fd, (line + "\n").encode())
        return "ok"

    handlers: dict[str, Callable[..., str]] = {"text": on_text, "exec": on_exec, "end": on_end}

    def serve() -> None:
        while True:
            request_ready.acquire()
            kind, thread, payload = slot[0]
            try:
                slot[1] = handlers[kind](thread, *payload)
            except failure:  # never leave the asking thread waiting
                slot[1] = "refuse: the verifier could not check this"
            answer_ready.release()

    get_ident = _thread.get_ident

    def ask(kind: str, payload: Any) -> str:
        with ask_lock:
            slot[0] = (kind, get_ident(), payload)
            request_ready.release()
            answer_ready.acquire()
            return str_(slot[1])

    verifier = _thread.start_new_thread(serve, ())
    return ask, verifier


HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by Python code, not a C type


def read_proofs(text: str, key: bytes) -> dict[str, float | None]:
    """The grader's side: test id -> partial score (None: no value) for every genuine proof."""
    import hmac

    found: dict[str, float | None] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or not hmac.compare_digest(fields[1], proof(key, fields[0])):
            continue
        value: float | None = None
        if len(fields) > 2:
            try:
                value = float(fields[2])
            except ValueError:
                value = float("nan")  # "not-a-number": scores zero, as any bad partial score
        found[fields[0]] = value
    return found


__all__ = [
    "END_MARK",
    "KEY_FILE",
    "PROOFS_FILE",
    "TEST_MARK",
    "mac",
    "proof",
    "read_proofs",
    "start",
]
