#pragma once
// Attribute and item lookup as Jinja2's sandbox does it (sandbox.py getattr/getitem), and the
// Python methods templates call on str, dict and list values.
//
//   a.b     the Python attribute first (a method of str/dict/list, a namespace attribute, a
//           loop attribute), else the item a['b'], else Undefined ("'dict object' has no
//           attribute 'b'");
//   a[k]    the item first (index, slice, key), else for a str key the attribute, else
//           Undefined. Looking into an Undefined is its UndefinedError.
// ImmutableSandboxedEnvironment: methods that change a list or dict (append, extend, insert,
// remove, reverse, sort; clear, pop, popitem, setdefault, update on dicts) and attributes
// starting with "__" are unsafe: an Undefined whose use is a SecurityError. list.pop and
// list.clear are allowed (the sandbox does not list them).

#include <optional>
#include <string>

#include "policy/tokenizer/jinja/value.h"

namespace rlft::tokenizer::jinja {

/// `item_fallback` false: Python's getattr() alone (the |attr filter).
Value get_attr(const Value& obj, const std::string& name, bool item_fallback = true);
Value get_item(const Value& obj, const Value& key);
/// obj.name(args) when obj has the method `name`; nullopt when it has none.
std::optional<Value> call_method(const Value& obj, const std::string& name, CallArgs& args);
/// str.format as the sandbox's formatter runs it ({} {0} {name} {0.attr} {0[key]}, !s !r, no
/// format specs).
std::string str_format(const std::string& format, const CallArgs& args);

}  // namespace rlft::tokenizer::jinja
