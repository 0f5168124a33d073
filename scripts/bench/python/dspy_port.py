"""dspy_port.py — the part of DSPy the founding example exercises, rewritten as
plain Python: a string signature, the ChatAdapter's `[[ ## field ## ]]` messages
and its parser, and Predict as one async LM call.

DSPy itself cannot be installed here, so this stands in for its runtime. The
messages are the ones DSPy's ChatAdapter builds (tide's adapter produces the same
text, which keeps the two contenders' prompts byte for byte alike); the parser
splits on the markers and reads each field as its type, as DSPy's does.
"""
import re

_TYPE_NAMES = {"str": "str", "int": "int", "float": "float", "bool": "bool"}
_MARKER = re.compile(r"^\[\[ ## (\w+) ## \]\]")


class ParseError(Exception):
    pass


class Signature:
    """'a, b -> c: int, d, e: bool' with instructions."""

    def __init__(self, text, instructions):
        ins, outs = text.split("->")
        self.inputs = [self._field(f) for f in ins.split(",")]
        self.outputs = [self._field(f) for f in outs.split(",")]
        self.instructions = instructions

    @staticmethod
    def _field(spec):
        name, _, typ = spec.partition(":")
        typ = typ.strip() or "str"
        if typ not in _TYPE_NAMES:
            raise ValueError("unsupported type " + typ)
        return name.strip(), typ


def _field_list(fields):
    return "\n".join("%d. `%s` (%s): " % (i, n, t) for i, (n, t) in enumerate(fields, 1))


def _placeholder(name, typ):
    note = {
        "int": "        # note: the value you produce must be a single int value",
        "float": "        # note: the value you produce must be a single float value",
        "bool": "        # note: the value you produce must be True or False",
    }.get(typ, "")
    return "[[ ## %s ## ]]\n{%s}%s" % (name, name, note)


def format_messages(sig, inputs):
    """The system and user messages ChatAdapter sends for these inputs."""
    system = "\n".join([
        "Your input fields are:",
        _field_list(sig.inputs).rstrip(),
        "Your output fields are:",
        _field_list(sig.outputs).rstrip(),
    ])
    structure = "\n\n".join(
        ["All interactions will be structured in the following way, with the appropriate values filled in."]
        + [_placeholder(n, t) for n, t in sig.inputs]
        + [_placeholder(n, t) for n, t in sig.outputs]
        + ["[[ ## completed ## ]]\n"]
    ).strip()
    system += "\n" + structure + "\nIn adhering to this structure, your objective is: \n        " + sig.instructions
    parts = ["[[ ## %s ## ]]\n%s" % (n, inputs[n]) for n, _ in sig.inputs]
    requirements = []
    for n, t in sig.outputs:
        hint = "" if t == "str" else " (must be formatted as a valid Python %s)" % t
        requirements.append("`[[ ## %s ## ]]`%s" % (n, hint))
    parts.append(
        "Respond with the corresponding output fields, starting with the field "
        + ", then ".join(requirements)
        + ", and then ending with the marker for `[[ ## completed ## ]]`."
    )
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


def _coerce(text, typ):
    if typ == "str":
        return text
    if typ == "int":
        return int(text)
    if typ == "float":
        return float(text)
    if text in ("True", "true"):
        return True
    if text in ("False", "false"):
        return False
    raise ValueError("not a bool: %r" % text)


def parse(sig, text):
    """The reply's fields, each read as its type; ParseError when one is missing
    or malformed."""
    sections, current, lines = {}, None, []
    for line in text.splitlines() + ["[[ ## completed ## ]]"]:
        m = _MARKER.match(line.strip())
        if m:
            if current is not None and current not in sections:
                sections[current] = "\n".join(lines).strip()
            current, lines = m.group(1), [line.strip()[m.end():]]
            if current == "completed":
                break
        else:
            lines.append(line)
    out = {}
    for name, typ in sig.outputs:
        if name not in sections:
            raise ParseError("missing field " + name)
        try:
            out[name] = _coerce(sections[name], typ)
        except ValueError as e:
            raise ParseError("field %s: %s" % (name, e)) from None
    return out


class Predict:
    """sig + model: `await predict(client, url, headers, **inputs)` → the outputs."""

    def __init__(self, sig, model="mock", temperature=0.0, max_tokens=1000):
        self.sig = sig
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens

    async def __call__(self, client, url, headers, **inputs):
        payload = {
            "model": self.model,
            "messages": format_messages(self.sig, inputs),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        status, body = await client.post_json(url, payload, headers)
        if status != 200:
            raise RuntimeError("HTTP %d" % status)
        return parse(self.sig, body["choices"][0]["message"]["content"])
