#pragma once
// The values a Jinja template computes with, modelled on the Python objects Jinja2 sees when
// transformers renders a chat: None, bool, int, float, str, list, tuple, dict (insertion
// ordered), dict views (d.items() …), one-shot iterators (what |select, |map … return),
// Jinja's Undefined, namespace() objects, callables (macros, globals, bound methods) and the
// `loop` object of a for loop.
//
// Lists, dicts and namespaces are shared by reference, as in Python (`set a = b` aliases b);
// strings are immutable and shared. Ints are 64-bit: an operation that would leave that range
// throws (Python's ints are unbounded), never wraps.
//
// Python's str() and repr() of every value are here (to_str / repr), since Jinja prints values
// with str(): True, None, 1.0, ['a', 1], {'k': 'v'}.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace rlft::tokenizer::jinja {

class Value;
class Interpreter;

/// A Python-level failure inside an operation: `type` is Python's exception name (TypeError,
/// UndefinedError, SecurityError …), or "unsupported" for what this engine refuses, or
/// "raise" for raise_exception(). The interpreter adds the template location and rethrows it
/// as TemplateError (RaisedError for "raise").
struct PyError {
  std::string type;
  std::string message;
};
[[noreturn]] void throw_py(std::string type, std::string message);

struct LoopState;
struct IteratorState;

using ValueList = std::vector<Value>;

/// A Python dict: keys compare with Python equality (1 == 1.0 == True), insertion order kept.
struct Dict {
  std::vector<std::pair<Value, Value>> items;

  /// The value at `key`, or nullptr.
  const Value* find(const Value& key) const;
  Value* find(const Value& key);
  /// Inserts or replaces (keeping the position of an existing key).
  void set(Value key, Value value);
  std::size_t size() const { return items.size(); }
};

/// Keyword arguments of a call, in the order written.
using Kwargs = std::vector<std::pair<std::string, Value>>;

/// The arguments of a call: positional, then keyword.
struct CallArgs {
  ValueList args;
  Kwargs kwargs;
};

/// A callable value: a macro, a global function (range, namespace, raise_exception …), a
/// bound method ("abc".upper) or loop.cycle.
struct Callable {
  std::string name;
  std::function<Value(Interpreter&, CallArgs&)> fn;
};

/// Why a value is undefined: Jinja's message when it is used ("'x' is undefined").
struct UndefinedInfo {
  std::string message;
  bool unsafe = false;  ///< the sandbox's unsafe attribute: calling it is a SecurityError
};

struct StringData {
  std::string text;
  bool markup = false;  ///< a markupsafe.Markup (from |safe or |escape)
};

enum class Kind {
  kUndefined,
  kNone,
  kBool,
  kInt,
  kFloat,
  kString,
  kList,
  kTuple,
  kView,  ///< dict.items() / keys() / values(): iterable, sized, not indexable
  kDict,
  kNamespace,
  kCallable,
  kLoop,
  kIterator,
};

/// Which dict view a kView value is.
enum class ViewKind : uint8_t { kItems, kKeys, kValues };

class Value {
 public:
  Value() : data_(std::shared_ptr<const UndefinedInfo>()) {}
  static Value undefined(std::string message, bool unsafe = false);
  static Value none() { return Value(Tag::kNone); }
  static Value boolean(bool b) { return Value(b); }
  static Value integer(int64_t i) { return Value(i); }
  static Value number(double d) { return Value(d); }
  static Value string(std::string s, bool markup = false);
  static Value list(ValueList items = {});
  static Value tuple(ValueList items);
  static Value view(ValueList items, ViewKind kind);
  /// range(): a tuple of its numbers that prints (refused) and serialises as a range does.
  static Value range(ValueList items);
  static Value iterator(ValueList items, std::string type_name = "generator");
  static Value dict(Dict d = {});
  static Value namespace_(Dict attrs);
  static Value callable(std::string name, std::function<Value(Interpreter&, CallArgs&)> fn);
  static Value loop(std::shared_ptr<LoopState> state);
  /// A JSON value as Python's json.loads gives it (objects keep their key order).
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const;
  bool is_undefined() const { return kind() == Kind::kUndefined; }
  bool is_none() const { return kind() == Kind::kNone; }
  bool is_bool() const { return kind() == Kind::kBool; }
  bool is_int() const { return kind() == Kind::kInt; }
  bool is_float() const { return kind() == Kind::kFloat; }
  /// int, float or bool (Python's bool is an int).
  bool is_number() const { return is_int() || is_float() || is_bool(); }
  bool is_string() const { return kind() == Kind::kString; }
  bool is_list() const { return kind() == Kind::kList; }
  bool is_tuple() const { return kind() == Kind::kTuple; }
  /// list or tuple.
  bool is_sequence() const { return is_list() || is_tuple(); }
  bool is_dict() const { return kind() == Kind::kDict; }
  bool is_namespace() const { return kind() == Kind::kNamespace; }
  bool is_callable() const { return kind() == Kind::kCallable; }
  bool is_loop() const { return kind() == Kind::kLoop; }
  bool is_view() const { return kind() == Kind::kView; }
  bool is_range() const { return sub_ == kSubRange; }
  bool is_iterator() const { return kind() == Kind::kIterator; }
  ViewKind view_kind() const { return static_cast<ViewKind>(sub_); }

  bool as_bool() const { return std::get<bool>(data_); }
  int64_t as_int() const;    ///< an int or a bool
  double as_double() const;  ///< any number
  const std::string& str() const { return std::get<std::shared_ptr<const StringData>>(data_)->text; }
  bool is_markup() const;
  /// The items of a list, tuple or view (shared: a list's items may be changed in place).
  ValueList& items() const { return *std::get<std::shared_ptr<ValueList>>(data_); }
  Dict& dict_ref() const { return *std::get<std::shared_ptr<Dict>>(data_); }
  const Callable& callable_ref() const { return *std::get<std::shared_ptr<const Callable>>(data_); }
  LoopState& loop_ref() const { return *std::get<std::shared_ptr<LoopState>>(data_); }
  IteratorState& iterator_ref() const { return *std::get<std::shared_ptr<IteratorState>>(data_); }
  const UndefinedInfo& undefined_info() const;
  /// Throws UndefinedError with this undefined's message.
  [[noreturn]] void fail_undefined() const;

  /// Python's truth value (Undefined is false).
  bool truthy() const;
  /// The same object (Python's `is`): identity of lists, dicts and callables, value of the rest.
  bool same_object(const Value& other) const;

  /// Python's type name, as in error messages: 'str', 'int', 'NoneType', 'dict' …
  std::string type_name() const;

 private:
  enum class Tag { kNone };
  enum Sub : uint8_t { kSubPlain = 10, kSubTuple, kSubNamespace, kSubRange };
  explicit Value(Tag) : data_(nullptr) {}
  explicit Value(bool b) : data_(b) {}
  explicit Value(int64_t i) : data_(i) {}
  explicit Value(double d) : data_(d) {}

  // Lists, tuples and views share the vector alternative, dicts and namespaces the dict one;
  // sub_ tells them apart (a ViewKind for views).
  std::variant<std::shared_ptr<const UndefinedInfo>, std::nullptr_t, bool, int64_t, double,
               std::shared_ptr<const StringData>, std::shared_ptr<ValueList>, std::shared_ptr<Dict>,
               std::shared_ptr<const Callable>, std::shared_ptr<LoopState>, std::shared_ptr<IteratorState>>
      data_;
  uint8_t sub_ = kSubPlain;
};

/// The state of a for loop, behind the `loop` variable.
struct LoopState {
  ValueList items;  ///< what the loop iterates over (after its `if` filter)
  std::size_t index0 = 0;
  bool changed_seen = false;  ///< loop.changed() has been called
  Value changed_last;         ///< its last arguments (a tuple)
};

/// A one-shot iterator (a generator from |select, |map …, or reversed()): iterating it
/// consumes it, it has no len() and prints as Python prints a generator (refused here).
struct IteratorState {
  ValueList items;
  std::size_t pos = 0;
  std::string type_name;  ///< "generator", "list_reverseiterator"
};

// --- Python semantics ------------------------------------------------------------------------

/// Python's str(v): what {{ v }} prints ("" for Undefined).
std::string to_str(const Value& v);
/// Python's repr(v).
std::string repr(const Value& v);
/// Python's repr of a float ("1.0", "0.1", "1e+20", "inf", "nan").
std::string float_repr(double d);
/// Python's ==.
bool equals(const Value& a, const Value& b);
/// Python's <, <=, >, >= ("lt", "le", "gt", "ge"); TypeError for unorderable types.
bool compare(const Value& a, const Value& b, std::string_view op);
/// Python's `a in b`.
bool contains(const Value& container, const Value& item);

/// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson calls it.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  /// The text of one indentation level (indent=N gives N spaces); nullopt: all on one line.
  std::optional<std::string> indent;
  /// nullopt: Python's default (", " and ": ", or "," and ": " with indent).
  std::optional<std::pair<std::string, std::string>> separators;
  bool sort_keys = false;
};
std::string json_dumps(const Value& v, const JsonDumpOptions& options);

/// The items that iterating `v` yields (a dict's keys, a string's characters, what is left of
/// an iterator, which this consumes); Undefined is empty. TypeError for values that are not
/// iterable.
ValueList iterate(const Value& v);
/// Python's len(); TypeError for values without one.
int64_t length(const Value& v);

}  // namespace rlft::tokenizer::jinja
