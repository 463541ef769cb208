// The Jinja engine (policy/tokenizer/jinja/jinja.h) construct by construct. Every expected
// string is what Jinja2 3.1 renders for the same template and context in transformers'
// environment (each was rendered with scripts/reference/jinja_render.py); the error cases check
// the location and the name in the message. tests/policy/jinja_reference_test.cpp compares
// whole chat templates with Jinja2 itself.
#include <nlohmann/json.hpp>

#include <ctime>
#include <string>
#include <vector>

#include "core/error.h"
#include "policy/tokenizer/jinja/jinja.h"

#include "tests/support/doctest_last.h"  // last (see there)

namespace jinja = rlft::tokenizer::jinja;

namespace {

const char* const kJinjaTestContext = R"({"x": [1, 2], "d": {"a": 1, "items": 5}, "s": "Hi", "n": null, "t": true,
                                          "f": 1.5})";

std::string jinja_render(const std::string& source, const char* context = kJinjaTestContext,
                         const jinja::RenderOptions& options = {}) {
  return jinja::Template::parse(source, "test.jinja").render(nlohmann::ordered_json::parse(context), options);
}

// A template, what Jinja2 renders for it, and its context (nullptr: kJinjaTestContext).
struct JinjaRow {
  const char* source;
  const char* expected;
  const char* context = nullptr;
};

void jinja_check_rows(const std::vector<JinjaRow>& rows) {
  for (const JinjaRow& row : rows) {
    CAPTURE(row.source);
    std::string got;
    try {
      got = jinja_render(row.source, row.context ? row.context : kJinjaTestContext);
    } catch (const std::exception& e) {
      got = std::string("exception: ") + e.what();
    }
    CHECK(got == row.expected);
  }
}

}  // namespace

TEST_SUITE("policy") {
  TEST_CASE("whitespace control follows trim_blocks, lstrip_blocks and the - and + markers") {
    jinja_check_rows({
        {"{% if t %}\n  yes\n{% endif %}\nend", "  yes\nend"},
        {"  {% if t %}\n    yes\n  {% endif %}\nend", "    yes\nend"},
        {"a  {%- if t -%}  b  {%- endif -%}  c", "abc"},
        {"  {%+ if t %}kept{% endif %}", "  kept"},
        {"  {{ s }}  {% if t %}x{% endif %}", "  Hi  x"},
        {"x{# c #}\ny\n  {# c #}\nz", "xy\nz"},
        {"a {{- s -}} b", "aHib"},
        {"{% raw %}{{ a }}{% endraw %}", "{{ a }}"},
        {"line\n", "line"},
        {"a\r\nb\r\n\r\n", "a\nb\n"},
        {"{% for i in x -%}\n  {{ i }}\n{%- endfor %}", "12"},
    });
  }

  TEST_CASE("values print as Python's str() prints them") {
    jinja_check_rows({
        {"{{ n }} {{ t }} {{ false }} {{ 7 }} {{ 1.0 }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 1.5e-7 }} {{ 1/3 }}",
         "None True False 7 1.0 0.30000000000000004 1e+20 1.5e-07 0.3333333333333333"},
        {"{{ [1, 'a', none, true, 2.5] }} {{ (1,) }} {{ () }} {{ {'k': 'v', 'n': [1]} }}",
         "[1, 'a', None, True, 2.5] (1,) () {'k': 'v', 'n': [1]}"},
        {"{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\t', '\\x01', 'é😀', '\\u200b'] }}",
         "[\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\t', '\\x01', 'é😀', '\\u200b']"},
        {"{{ d.items() }} {{ d.keys() }} {{ namespace(a=1) }}",
         "dict_items([('a', 1), ('items', 5)]) dict_keys(['a', 'items']) <Namespace {'a': 1}>"},
    });
  }

  TEST_CASE("arithmetic, comparisons and boolean operators follow Python (and Jinja2's constant folding)") {
    jinja_check_rows({
        {"{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 4 / 2 "
         "}}",
         "3 -4 2 3.0 0.5 1024 0.5 2.0"},
        {"{{ 'ab' * 2 }} {{ x * 2 }} {{ x + [3] }} {{ 'a' ~ 1 ~ none ~ [2] }} {{ 'a' ~ 1 + 2 if false else 'prec' }}",
         "abab [1, 2, 1, 2] [1, 2, 3] a1None[2] prec"},
        {"{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 1 == 1.0 }} {{ true == 1 }} {{ [1] == [1.0] }} {{ (1,) == [1] }} {{ 'a' < "
         "'b' }} {{ [1, 2] < [1, 3] }}",
         "True False True True True False True True"},
        {"{{ 'H' in s }} {{ 'a' not in s }} {{ 2 in x }} {{ 'a' in d }} {{ 0 or '' or 'z' }} {{ 1 and 0 }} {{ not x }}",
         "True True True True z 0 False"},
        {"{{ -2 ** 2 }} {{ -2 ** x|length }} {{ (0 - 2) ** x|length }} {{ '' % [1] }}{{ 'k' % missing }} {{ '%s' % [1, "
         "2] }}",
         "4 -4 -4 k [1, 2]"},
    });
  }

  TEST_CASE("strings index, slice, split, strip and change case as Python's str does") {
    jinja_check_rows({
        {"{{ s[0] }} {{ s[-1] }} [{{ s[5] }}] {{ 'héllo'[1] }} {{ 'héllo'|length }} {{ 'abcdef'[1:4] }} {{ "
         "'abcdef'[::-2] }} {{ [1, 2, 3, 4, 5][-2:] }}",
         "H i [] é 5 bcd fdb [4, 5]"},
        {"{{ '  a b  c '.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} "
         "{{ ' a b '.split(None, 1) }}",
         "['a', 'b', 'c'] ['a', 'b', '', 'c'] ['a', 'b,c'] ['a,b', 'c'] ['a', 'b ']"},
        {"[{{ ' x '.strip() }}] [{{ 'xxaxx'.strip('x') }}] [{{ ' x '.lstrip() }}] [{{ ' x '.rstrip() }}] [{{ "
         "'\\n\\nx\\n'.lstrip('\\n') }}]",
         "[x] [a] [x ] [ x] [x\n]"},
        {"{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'Hello'.replace('l', 'L') }} {{ "
         "'Hello'.replace('l', 'L', 1) }} {{ 'Hello'.find('l') }} {{ 'Hello'.rfind('l') }} {{ 'Hello'.count('l') }}",
         "True True HeLLo HeLlo 2 3 2"},
        {"{{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'Straße'.upper() }} {{ 'ΣΑΣ ΟΔΟΣ'.lower() }} {{ "
         "'ǆemal'.title() }} {{ 'İ'.lower()|length }}",
         "Hello World Hello STRASSE σας οδος ǅemal 2"},
        {"{{ '{}-{}'.format(1, 'b') }} {{ '{0}{name}'.format(1, name='n') }} {{ '%s=%d' % ('k', 3) }} {{ '%5.1f|%-3s|' "
         "% (3.14159, 'a') }}",
         "1-b 1n k=3   3.1|a  |"},
        {"{{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'aXbXc'.partition('X') }} {{ '-5'.zfill(4) }} {{ 'ab'.center(6, '*') }} "
         "{{ ','.join(['1', '2']) }}",
         "['a', 'b', 'c'] ('a', 'X', 'bXc') -005 **ab** 1,2"},
    });
  }

  TEST_CASE("undefined values print empty, test false and iterate empty") {
    jinja_check_rows({
        {"[{{ missing }}] {{ missing is defined }} {{ missing is undefined }} {{ missing|default('dflt') }} {{ "
         "missing|length }} {{ 'a' in missing }}",
         "[] False True dflt 0 False"},
        {"{% for m in missing %}{{ m }}{% else %}empty{% endfor %} {% if missing %}y{% else %}n{% endif %} {{ missing "
         "== missing2 }} {{ d.nokey is defined }}",
         "empty n True False"},
    });
  }

  TEST_CASE("if, conditional expressions and for loops with loop.*, else, filters, break and continue") {
    jinja_check_rows({
        {"{% if n %}a{% elif f > 1 %}b{% else %}c{% endif %} {{ 'y' if t else 'n' }} [{{ 'y' if false }}]", "b y []"},
        {"{% for m in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ "
         "loop.first }}{{ loop.last }}{{ loop.length }}|{% endfor %}",
         "1032TrueFalse3|2121FalseFalse3|3210FalseTrue3|"},
        {"{% for m in ['a', 'b', 'c'] %}[{{ loop.previtem }}{{ loop.nextitem }}]{{ loop.cycle('o', 'e') }}{% endfor %}",
         "[b]o[ac]e[b]o"},
        {"{% for i in range(10) if i is odd %}{{ loop.index }}:{{ i }} {% endfor %}", "1:1 2:3 3:5 4:7 5:9 "},
        {"{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i "
         "}}{% endfor %}",
         "0134"},
        {"{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ "
         "c }}{% endfor %}",
         "a=1;items=5; 123"},
        {"{% for row in [[1, 2], [3]] %}{% for c in row %}{{ loop.index }}{{ c }} {% endfor %}/{{ loop.index }} {% "
         "endfor %}",
         "11 22 /1 13 /2 "},
        {"{% for c in 'hé' %}{{ c }}.{% endfor %} {% for k in d %}{{ k }},{% endfor %} {% for i in [] %}x{% else "
         "%}none{% endfor %}",
         "h.é. a,items, none"},
        {"{% for i in x %}{% break %}{% else %}else runs: no body ran to its end{% endfor %} {% for i in x %}{% if i "
         "== 2 %}{% continue %}{% endif %}{% else %}not this{% endfor %}",
         "else runs: no body ran to its end "},
        {"{% for i in x %}{% set blk %}{{ i }}{% continue %}{% endset %}never{% endfor %}[{{ blk }}]", "[]"},
    });
  }

  TEST_CASE("set assigns in the current scope; a loop's assignments stay in the loop; namespace attributes escape it") {
    jinja_check_rows({
        {"{% set y = 1 %}{% for i in x %}{{ y }}{% set y = 2 %}{{ y }}{% endfor %}{{ y }}", "12121"},
        {"{% set ns = namespace(total=0, seen=[]) %}{% for i in x %}{% set ns.total = ns.total + i %}{% endfor %}{{ "
         "ns.total }}",
         "3"},
        {"{% set a, b = 1, 2 %}{{ a }}{{ b }} {% set c = (1, 2) %}{{ c }} {% if true %}{% set q = 5 %}{% endif %}{{ q "
         "}}",
         "12 (1, 2) 5"},
        {"{% set block %} text {{ s }} {% endset %}[{{ block }}] {% set up | upper | trim %} shout {% endset %}[{{ up "
         "}}]",
         "[ text Hi ] [SHOUT]"},
        {"{% set messages = [1, 2, 3][1:] %}{{ messages }} {% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]",
         "[2, 3] 3[]"},
    });
  }

  TEST_CASE("macros take defaults, varargs and kwargs; call, filter and generation blocks render their bodies") {
    jinja_check_rows({
        {"{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('A') }} {{ "
         "greet('B', greeting='Hi') }}",
         "Hello, A! Hi, B!"},
        {"{% macro m(a, b=a ~ '!') %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }} {{ m(1, 2, 3, "
         "k=4) }}",
         "11!(){} 12(3,){'k': 4}"},
        {"{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold{% endcall "
         "%}",
         "<b>bold</b>"},
        {"{% macro each(xs) %}{% for v in xs %}[{{ caller(v) }}]{% endfor %}{% endmacro %}{% call(v) each(['a', 'b']) "
         "%}{{ v|upper }}{% endcall %}",
         "[A][B]"},
        {"{% macro m() %}{{ y }}{% endmacro %}{% set y = 3 %}{{ m() }}{% set y = 4 %}{{ m() }}", "34"},
        {"{% filter upper %}abc {{ s }}{% endfilter %} {% filter indent(2, true) %}a\nb{% endfilter %}",
         "ABC HI   a\n  b"},
        {"{% generation %}assistant text{% endgeneration %}", "assistant text"},
    });
  }

  TEST_CASE("the builtin filters give what Jinja2's give") {
    jinja_check_rows({
        {"{{ '  a  '|trim }}|{{ 'xxaxx'|trim('x') }}|{{ 'ab'|upper }}|{{ 'AB'|lower }}|{{ 'hello world'|capitalize "
         "}}|{{ 'a-b c(d[e'|title }}|{{ 'hello'|replace('l', 'L') }}",
         "a|a|AB|ab|Hello world|A-B C(D[E|heLLo"},
        {"{{ x|length }} {{ d|count }} {{ 'héllo'|length }} {{ x|first }} {{ x|last }} {{ 'abc'|first }} {{ []|first "
         "is undefined }} {{ x|list }} {{ 'ab'|list }}",
         "2 2 5 1 2 a True [1, 2] ['a', 'b']"},
        {"{{ x|join(', ') }} {{ [{'n': 'a'}, {'n': 'b'}]|join('|', attribute='n') }} {{ [1, none, 'a']|join }}",
         "1, 2 a|b 1Nonea"},
        {"{{ missing|default('d') }} {{ ''|default('e', true) }} {{ none|default('x') }} {{ none|d('x', true) }} {{ "
         "0|default(5) }}",
         "d e None x 0"},
        {"{{ [3, 1, 2]|sort }} {{ [3, 1, 2]|sort(reverse=true) }} {{ ['b', 'A', 'c']|sort }} {{ ['b', 'A', "
         "'c']|sort(case_sensitive=true) }} {{ [{'n': 2}, {'n': 1}]|sort(attribute='n') }}",
         "[1, 2, 3] [3, 2, 1] ['A', 'b', 'c'] ['A', 'b', 'c'] [{'n': 1}, {'n': 2}]"},
        {"{{ ['a', 'A', 'b']|unique|list }} {{ [3, 1, 2]|max }} {{ [3, 1, 2]|min }} {{ [1, 2, 3]|sum }} {{ [{'v': 1}, "
         "{'v': 2}]|sum(attribute='v') }} {{ x|reverse|list }} {{ 'abc'|reverse }}",
         "['a', 'b'] 3 1 6 3 [2, 1] cba"},
        {"{{ x|map('string')|list }} {{ ['a', 'b']|map('upper')|join('-') }} {{ [{'a': 1}, {}]|map(attribute='a', "
         "default=0)|list }}",
         "['1', '2'] A-B [1, 0]"},
        {"{{ [{'r': 'user'}, {'r': 'bot'}]|selectattr('r', 'equalto', 'user')|list }} {{ [{'r': 'user'}, {'r': "
         "'bot'}]|rejectattr('r', 'eq', 'user')|list }} {{ [1, 0, 2]|select|list }} {{ [1, 2, 3]|reject('odd')|list }}",
         "[{'r': 'user'}] [{'r': 'bot'}] [1, 2] [2]"},
        {"{{ [{'a': 1}, {}]|selectattr('a', 'defined')|list }} {{ [{'a': 1}, {}]|selectattr('a', 'undefined')|list }} "
         "{{ [{'a': 1}, {'a': 0}]|selectattr('a')|list }}",
         "[{'a': 1}] [{}] [{'a': 1}]"},
        {"{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent('> ', blank=true) }}",
         "a\n    b\n\n    c|  a\n  b|a\n> \n> b"},
        {"{{ 3.7|int }} {{ '42'|int }} {{ '4.2'|int }} {{ 'x'|int(7) }} {{ '0x1A'|int(0, 16) }} {{ '3'|float }} {{ "
         "'x'|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }} {{ 2.1|round(0, 'ceil') }}",
         "3 42 4 7 26 3.0 0.0 3 2.57 2.0 3.0"},
        {"{{ {'b': 1, 'a': 2}|dictsort }} {{ {'b': 1, 'a': 2}|dictsort(by='value', reverse=true) }} {{ {'a': "
         "1}|items|list }} {{ [1, 2, 3, 4]|batch(3)|list }} {{ [1, 2, 3, 4, 5]|slice(2)|list }}",
         "[('a', 2), ('b', 1)] [('a', 2), ('b', 1)] [('a', 1)] [[1, 2, 3], [4]] [[1, 2, 3], [4, 5]]"},
        {"{{ 'hello world foo'|truncate(9) }}|{{ 'hello world'|wordcount }}|{{ 'x'|center(5) }}|{{ '%s-%s'|format(1, "
         "2) }}|{{ 7|string ~ '!' }}|{{ x|attr('count')(1) }}",
         "hello...|2|  x  |1-2|7!|1"},
        {"{{ '<b>'|e }} {{ '<b>'|safe }} {{ ('<a>'|safe) + '<b>' }} {{ '<&\"\\'>'|escape }}",
         "&lt;b&gt; <b> <a>&lt;b&gt; &lt;&amp;&#34;&#39;&gt;"},
    });
  }

  TEST_CASE("the builtin tests give what Jinja2's give") {
    jinja_check_rows({
        {"{{ n is none }}{{ s is string }}{{ d is mapping }}{{ x is iterable }}{{ 1 is number }}{{ x is sequence }}{{ "
         "t is true }}{{ false is false }}{{ t is boolean }}{{ 1 is integer }}{{ f is float }}",
         "TrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue"},
        {"{{ 3 is odd }}{{ 4 is even }}{{ 9 is divisibleby 3 }}{{ 3 is eq 3 }}{{ 3 is ne 4 }}{{ 3 is gt 2 }}{{ 3 is ge "
         "3 }}{{ 2 is lt 3 }}{{ 2 is le 1 }}{{ 2 is in [2] }}{{ 2 is equalto 2 }}",
         "TrueTrueTrueTrueTrueTrueTrueTrueFalseTrueTrue"},
        {"{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ 'upper' is filter }}{{ 'odd' is test }}{{ range is callable }}{{ "
         "x is sameas x }}{{ n is sameas none }}{{ ('a'|safe) is escaped }}{{ x is not string }}",
         "TrueTrueTrueTrueTrueTrueTrueTrueTrue"},
    });
  }

  TEST_CASE("tojson is transformers' json.dumps: key order kept, non-ASCII raw, indent and separators as Python's") {
    jinja_check_rows({
        {"{{ {'a': [1, 2.5, none, true], 'é': 'ü😀\\n\"'}|tojson }}",
         "{\"a\": [1, 2.5, null, true], \"é\": \"ü😀\\n\\\"\"}"},
        {"{{ {'a': [1, {}], 'b': []}|tojson(indent=2) }}", "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}"},
        {"{{ {'b': 1, 'a': {'d': 1, 'c': 2}}|tojson(sort_keys=true) }} {{ {'a': 1, 'b': 2}|tojson(separators=(',', "
         "':')) }} {{ 'é😀'|tojson(ensure_ascii=true) }} {{ {1: 2, none: 3}|tojson }}",
         "{\"a\": {\"c\": 2, \"d\": 1}, \"b\": 1} {\"a\":1,\"b\":2} \"\\u00e9\\ud83d\\ude00\" {\"1\": 2, \"null\": 3}"},
        {"{{ tools|tojson }}",
         "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\", "
         "\"properties\": {\"x\": {\"type\": \"number\"}}}}}]",
         "{\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\", "
         "\"properties\": {\"x\": {\"type\": \"number\"}}}}}]}"},
    });
  }

  TEST_CASE("select, map and friends give one-shot generators, as in Jinja2") {
    jinja_check_rows({
        {"{% set g = [1, 2, 3]|select %}{{ g|first }} {{ g|list }} {{ g|list }}", "1 [2, 3] []"},
        {"{% if [0]|select %}generators are true{% endif %} {{ [1, 2]|select|list|length }}", "generators are true 2"},
    });
  }

  TEST_CASE("a syntax error names the origin, line and column") {
    try {
      jinja::Template::parse("line one\n{% if t %}\n  {{ 1 +* 2 }}\n{% endif %}", "chat.jinja");
      FAIL("no error");
    } catch (const jinja::TemplateError& e) {
      CHECK(std::string(e.what()) == "chat.jinja:3:9: unexpected '*'");
      CHECK(e.origin() == "chat.jinja");
      CHECK(e.line() == 3);
      CHECK(e.column() == 9);
      CHECK(e.message() == "unexpected '*'");
    }
    CHECK_THROWS_WITH_AS(jinja_render("{% for i in x %}\n{% if t %}{% endfor %}"),
                         doctest::Contains("test.jinja:2:14: Encountered unknown tag 'endfor'. You probably made a "
                                           "nesting mistake. Jinja is expecting this tag, but currently looking for "
                                           "'elif' or 'else' or 'endif'."),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{% for m in x %}open"),
                         doctest::Contains("Unexpected end of template. Jinja was looking for the following tags: "
                                           "'endfor' or 'else'. The innermost block that needs to be closed is 'for'."),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("é {{ 'open }}"), doctest::Contains("test.jinja:1:6: unexpected char \"'\""),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ x[1 }}"), doctest::Contains("unexpected '}', expected ']'"),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{# never closed"), doctest::Contains("Missing end of comment tag"),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{% break %}"), doctest::Contains("'break' outside loop"), jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{% set true = 1 %}"), doctest::Contains("can't assign to 'const'"),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja::Template::parse(std::string("ok\n\xff"), "bad.jinja"),
                         doctest::Contains("bad.jinja:2:1: invalid UTF-8"), jinja::TemplateError);
  }

  TEST_CASE("unknown and unsupported filters, tests, statements and methods are errors that name them") {
    CHECK_THROWS_WITH_AS(jinja_render("{{ x|nosuch }}"), doctest::Contains("test.jinja:1:6: No filter named 'nosuch'."),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ x is nosuch }}"), doctest::Contains("No test named 'nosuch'."),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ s|urlize }}"),
                         doctest::Contains("the filter 'urlize' is not supported by rlft's Jinja engine"),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{% do x.append(1) %}"), doctest::Contains("Encountered unknown tag 'do'."),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{% include 'other.jinja' %}"),
                         doctest::Contains("the 'include' statement is not supported"), jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{% for i in x recursive %}{% endfor %}"),
                         doctest::Contains("recursive for loops are not supported"), jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ s.casefold() }}"), doctest::Contains("the method str.casefold()"),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ x|select }}"), doctest::Contains("printing a generator"),
                         jinja::TemplateError);
    // As in Jinja2, a name inside an `if` is looked up only when it runs.
    CHECK(jinja_render("{% if false %}{{ x|nosuch }}{% endif %}ok") == "ok");
    CHECK_THROWS_WITH_AS(jinja_render("{% if true %}{{ x|nosuch }}{% endif %}"),
                         doctest::Contains("test.jinja:1:19: TemplateRuntimeError: No filter named 'nosuch' found."),
                         jinja::TemplateError);
  }

  TEST_CASE("rendering errors carry Python's exception type and the template location") {
    CHECK_THROWS_WITH_AS(jinja_render("{{ 'a' + 1 }}"),
                         "test.jinja:1:8: TypeError: can only concatenate str (not \"int\") to str",
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("\n  {{ missing.attr }}"),
                         "test.jinja:2:13: UndefinedError: 'missing' is undefined", jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ d.nokey.deeper }}"),
                         doctest::Contains("UndefinedError: 'dict object' has no attribute 'nokey'"),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ x.append(3) }}"),
                         doctest::Contains("SecurityError: access to attribute 'append' of 'list' object is unsafe."),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ d.update({}) }}"),
                         doctest::Contains("SecurityError: access to attribute 'update' of 'dict' object is unsafe."),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{% set s.a = 1 %}"),
                         doctest::Contains("cannot assign attribute on non-namespace object"), jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ x|select|length }}"),
                         doctest::Contains("TypeError: object of type 'generator' has no len()"), jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ 1 / 0 }}"), doctest::Contains("ZeroDivisionError: division by zero"),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
                         doctest::Contains("TypeError: macro 'm' takes not more than 1 argument(s)"),
                         jinja::TemplateError);
    CHECK_THROWS_WITH_AS(jinja_render("{{ missing|tojson }}"),
                         doctest::Contains("TypeError: Object of type Undefined is not JSON serializable"),
                         jinja::TemplateError);
  }

  TEST_CASE("raise_exception throws RaisedError carrying exactly its message") {
    const std::string source =
        "{% if messages[0].role != 'user' %}\n  {{ raise_exception('Roles must alternate ' ~ "
        "'user/assistant') }}\n{% endif %}ok";
    const auto t = jinja::Template::parse(source, "gemma.jinja");
    CHECK(t.render(nlohmann::ordered_json::parse(R"({"messages": [{"role": "user"}]})")) == "ok");
    try {
      t.render(nlohmann::ordered_json::parse(R"({"messages": [{"role": "system"}]})"));
      FAIL("no error");
    } catch (const jinja::RaisedError& e) {
      CHECK(std::string(e.what()) == "Roles must alternate user/assistant");
      CHECK(e.origin() == "gemma.jinja");
      CHECK(e.line() == 2);
    }
  }

  TEST_CASE("strftime_now formats the time RenderOptions gives, in the C locale") {
    jinja::RenderOptions options;
    options.now = [] {
      std::tm tm{};
      tm.tm_year = 2024 - 1900;
      tm.tm_mon = 6;
      tm.tm_mday = 26;
      tm.tm_hour = 9;
      return tm;
    };
    CHECK(jinja_render("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M %A') }}", kJinjaTestContext,
                       options) == "26 Jul 2024|2024-07-26 09:00 Friday");
    // datetime.now() is naive: %z and %Z are empty; %f (microseconds) is not known here.
    CHECK(jinja_render("[{{ strftime_now('%z%Z') }}]", kJinjaTestContext, options) == "[]");
    CHECK_THROWS_WITH_AS(jinja_render("{{ strftime_now('%f') }}", kJinjaTestContext, options),
                         doctest::Contains("%f (microseconds)"), jinja::TemplateError);
    CHECK(jinja_render("{{ strftime_now('%Y')|length }}") == "4");  // the local time by default
  }

  TEST_CASE("the context is a JSON object whose key order is kept") {
    CHECK(jinja_render("{{ o }} {{ o|tojson }} {% for k in o %}{{ k }}{% endfor %}",
                       R"({"o": {"z": 1, "a": [2.0]}})") == "{'z': 1, 'a': [2.0]} {\"z\": 1, \"a\": [2.0]} za");
    const auto t = jinja::Template::parse("{{ a }}", "ctx.jinja");
    CHECK_THROWS_WITH_AS(t.render(nlohmann::ordered_json::array()), doctest::Contains("must be a JSON object"),
                         rlft::Error);
    CHECK(t.origin() == "ctx.jinja");
    CHECK(t.source() == "{{ a }}");
  }
}
