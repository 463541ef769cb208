#!/usr/bin/env python3
"""Renders Jinja chat templates as transformers' apply_chat_template does: the byte-for-byte
reference for rlft's Jinja engine (policy/tokenizer/jinja/, tests/policy/jinja_reference_test.cpp).

Run with Debian's /usr/bin/python3 (python3-jinja2). Reads JSON lines on stdin, one render each:

  {"template": "...", "context": {...}}            the template text
  {"template_file": "x.jinja", "context": {...}}   a template file
  {"config_file": "tokenizer_config.json", ...}    its "chat_template" (a string)
  optional "now": "2024-07-26T10:00:00"            the time strftime_now() sees (default: now)
  optional "generation": true                      also report what {% generation %} blocks wrote

and writes one JSON line per input: {"output": text} (with "generation": [the text of each
block's span], in order, when asked), or {"raised": message} when the template called
raise_exception(message), or {"error": "Type: message"} for any other failure.

The environment is transformers' (utils/chat_template_utils.py, _compile_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker,
loopcontrols]), its tojson filter (json.dumps with ensure_ascii=False), and the globals raise_exception and
strftime_now. The context is passed as keyword arguments to render(), as transformers passes
messages, tools, documents, add_generation_prompt, the special tokens and any extra kwargs.
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


class RaisedByTemplate(jinja2.exceptions.TemplateError):
    """What raise_exception raises (a TemplateError, as in transformers), told apart here."""


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker: {% generation %}...{% endgeneration %} is a call block
    that outputs its body; while tracking, each block's span starts at the length of what the
    template has output so far (the chunks render() has yielded) and covers the body."""

    tags = {"generation"}

    def __init__(self, environment):
        super().__init__(environment)
        self.chunks = None  # while tracking: the chunks yielded so far
        self.spans = []

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_generation_support")
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        rv = caller()
        if self.chunks is not None:
            start = len("".join(self.chunks))
            self.spans.append((start, start + len(rv)))
        return rv


def make_environment(now):
    def raise_exception(message):
        raise RaisedByTemplate(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return (now or datetime.now()).strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def template_text(request):
    if "template" in request:
        return request["template"]
    if "template_file" in request:
        with open(request["template_file"], encoding="utf-8") as f:
            return f.read()
    with open(request["config_file"], encoding="utf-8") as f:
        return json.load(f)["chat_template"]


def render(request):
    now = datetime.fromisoformat(request["now"]) if request.get("now") else None
    try:
        env = make_environment(now)
        template = env.from_string(template_text(request))
        if not request.get("generation"):
            return {"output": template.render(**request.get("context", {}))}
        tracker = env.extensions[GenerationTag.identifier]
        tracker.chunks, tracker.spans = [], []
        for chunk in template.generate(**request.get("context", {})):
            tracker.chunks.append(chunk)
        text = "".join(tracker.chunks)
        return {"output": text, "generation": [text[a:b] for a, b in tracker.spans]}
    except RaisedByTemplate as e:
        return {"raised": e.message}
    except Exception as e:  # every failure is reported, the next line still rendered
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(render(json.loads(line)), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
