"""What the user sees on stderr: this tool's progress and messages, not the libraries'.

Converters and runtimes talk a lot (LiteRT's "Created TensorFlow Lite XNNPACK delegate",
JAX's fork warning, torchao's missing kernels, NNCF's and the quantizer's progress bars). By
default the command line keeps them out: native libraries write to file descriptor 2, which
`quiet_libraries` points at /dev/null while the tool's own sys.stderr keeps the terminal;
Python-level warnings and library logs below ERROR are dropped; `muted()` swallows what a
library prints from Python during one call. `--verbose` leaves everything as it was.
"""
import contextlib
import io
import logging
import os
import sys
import warnings

_VERBOSE = True  # a library user (no CLI) sees everything, as Python would show it
LIBRARY_LOGGERS = ("nncf", "torchao", "jax", "absl", "coremltools", "litert_torch", "ai_edge_quantizer",
                   "onnxslim", "torch")


def quiet_libraries(verbose: bool):
    global _VERBOSE
    _VERBOSE = verbose
    if verbose:
        return
    for var, value in (("TF_CPP_MIN_LOG_LEVEL", "3"), ("GLOG_minloglevel", "3"), ("LITERT_TORCH_SHOW_PROGRESS", "n")):
        os.environ.setdefault(var, value)
    warnings.simplefilter("ignore")
    logging.getLogger().setLevel(logging.ERROR)
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = io.TextIOWrapper(os.fdopen(terminal, "wb", buffering=0), encoding=sys.stderr.encoding,
                                  errors="backslashreplace", line_buffering=True, write_through=True)


@contextlib.contextmanager
def muted():
    """Swallow what a library prints from Python (stdout and stderr) during the block; the
    tool's progress bars, made before it, keep their stream."""
    if _VERBOSE:
        yield
        return
    sink = io.StringIO()
    logging.disable(logging.WARNING)  # libraries that set their own loggers' levels (torch's pytree warnings)
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            yield
    finally:
        logging.disable(logging.NOTSET)
