"""Which values a test may compare or pass to a library function: none whose behaviour the learner wrote.

A test ``assert square(3) == 9`` trusts the value ``square`` returned to compare honestly. A value
of a class the learner made (with ``class`` or with ``type()``) can answer "equal" to anything,
be truthy always, or take over ``np.allclose`` through ``__array_function__``. The grader
rewrites a test's comparisons and calls (``aifkit.grading.proof``) so the guard sees their values
first; ``checker`` returns the two checks the guard applies.

A value is *plain* when no class in its type's MRO that Python code made defines one of
``BEHAVIOUR`` (comparison, truth, conversion, attribute access, NumPy's and PyTorch's dispatch)
with code that is not installed; containers (list, tuple, dict, set) are plain when their items
are; a NumPy array of Python objects is not. Classes written in C (``int``, ``float``, ``str``,
``numpy.ndarray``, ``torch.Size``) cannot be made by learner code. ``torch.Tensor`` is plain as
long as its methods are PyTorch's own (a learner's ``torch.Tensor.__eq__ = ...`` makes it not).

Everything here is read through C-level accessors bound when the check is made (``type``'s own
``__flags__``/``__mro__``/``__dict__`` descriptors), so inspecting a learner's object never runs
the learner's code: no ``__getattribute__``, ``__eq__`` or metaclass of theirs is called.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import Any

HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: a class made by Python code, not a C type
MAX_ITEMS = 100_000  # values a check looks at, containers' items included
MAX_DEPTH = 8
#: What a class may not do with code that is not installed, for its values to be trusted.
BEHAVIOUR = frozenset(
    {
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__len__",
        "__float__", "__int__", "__index__", "__complex__", "__abs__", "__round__",
        "__getattribute__", "__getattr__", "__class__", "__iter__", "__contains__",
        "__array__", "__array_ufunc__", "__array_function__", "__array_interface__",
        "__array_struct__", "__array_priority__", "__torch_function__", "__torch_dispatch__",
        "__instancecheck__", "__subclasscheck__", "__hash__",
    }
)  # fmt: skip
#: What a value handed to a library function may not do with learner code: what would let it
#: answer for the library (comparison, truth, NumPy's and PyTorch's dispatch, a false class).
#: Iterating, measuring or converting it only yields the learner's own values, as a list would.
ARGUMENT_BEHAVIOUR = frozenset(
    {
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__",
        "__array_ufunc__", "__array_function__", "__torch_function__", "__torch_dispatch__",
        "__class__", "__instancecheck__", "__subclasscheck__",
    }
)  # fmt: skip
#: Builtins that only look at identity or type: a learner's object may be passed to them.
IDENTITY_BUILTINS = ("isinstance", "issubclass", "hasattr", "type", "id", "callable", "print")

Check = Callable[[Any], str]


def checker(trusted_file: Callable[[str], bool]) -> tuple[Check, Check, Callable[[Any], bool]]:
    """``(compare, call, learner_code)``: the first two take the values a rewritten test hands
    over and return "" when they may be used, else what is wrong, in words for the learner;
    ``learner_code(callable)`` says whether calling it runs code the learner wrote."""
    import builtins

    type_, len_, isinstance_, tuple_, all_, any_, id_ = type, len, isinstance, tuple, all, any, id
    dict_items, dict_values, dict_get, getattr_, str_ = (
        dict.items,
        dict.values,
        dict.get,
        getattr,
        str,
    )
    module_dict = vars(ModuleType)["__dict__"].__get__
    proxy_values = type(type.__dict__).values  # a class's namespace is a mappingproxy
    modules, callable_ = sys.modules, callable
    flags_of = type.__dict__["__flags__"].__get__
    mro_of = type.__dict__["__mro__"].__get__
    dict_of = type.__dict__["__dict__"].__get__
    name_of = type.__dict__["__qualname__"].__get__
    module_of = type.__dict__["__module__"].__get__
    heap, behaviour, arguments = HEAPTYPE, BEHAVIOUR, ARGUMENT_BEHAVIOUR
    max_items, max_depth = MAX_ITEMS, MAX_DEPTH
    function_type, method_type, builtin_type = FunctionType, MethodType, BuiltinFunctionType
    module_type, classmethod_type, staticmethod_type, property_type = (
        ModuleType,
        classmethod,
        staticmethod,
        property,
    )
    slot_types = (type_(object.__eq__), type_(str.join), type_(dict.__dict__["fromkeys"]))
    containers = (list, tuple, set, frozenset)
    iterators = tuple((base, base.__iter__) for base in containers)
    identity = frozenset(id(getattr(builtins, name)) for name in IDENTITY_BUILTINS)

    def installed_code(function: Any) -> bool:
        """A function whose code is installed, or generated for an installed module's class
        (a dataclass's ``__eq__`` is compiled from text, named ``<string>``)."""
        filename = function.__code__.co_filename
        if trusted_file(filename):
            return True
        if type_(filename) is not str_ or filename != "<string>":
            return False
        module = (
            dict_get(modules, function.__module__) if type_(function.__module__) is str_ else None
        )
        if type_(module) is not module_type or module_dict(module) is not function.__globals__:
            return False
        path: Any = dict_get(module_dict(module), "__file__")
        return type_(path) is str_ and trusted_file(path)

    def installed_class(cls: type) -> bool:
        """A class written in an installed module: one of its own methods is installed code."""
        prefix = name_of(cls) + "."
        for item in proxy_values(dict_of(cls)):
            if type_(item) is function_type and installed_code(item):
                qualname = item.__qualname__
                if type_(qualname) is str_ and qualname.startswith(prefix):
                    return True
        return False

    def installed_behaviour(value: Any, owner: type) -> bool:
        kind = type_(value)
        if value is None or (not flags_of(kind) & heap and not callable_(value)):
            return True  # __hash__ = None, __array_priority__ = 1000: data, not code
        if kind is function_type:
            return installed_code(value)
        if kind is classmethod_type or kind is staticmethod_type:
            return installed_behaviour(value.__func__, owner)
        if kind is property_type:
            return all_(installed_behaviour(f, owner) for f in (value.fget, value.fset, value.fdel))
        if kind in slot_types:
            return not flags_of(value.__objclass__) & heap
        if kind is builtin_type:  # torch.Tensor.__torch_dispatch__: C code, in PyTorch's class
            return installed_class(owner)
        return False

    def learner_behaviour(kind: type, names: frozenset[str] = behaviour) -> str:
        """The first of ``names`` that a class of ``kind``'s MRO defines with learner code."""
        for cls in mro_of(kind):
            if flags_of(cls) & heap == 0:
                continue
            namespace = dict_of(cls)
            for name in names:
                if name in namespace and not installed_behaviour(namespace[name], cls):
                    return f"{name_of(cls)}.{name}"
        return ""

    def plain(value: Any, budget: list[int], depth: int, names: frozenset[str] = behaviour) -> str:
        budget[0] -= 1
        if budget[0] < 0 or depth > max_depth:
            return "a value too large or too deep to check"
        kind = type_(value)
        wrong = learner_behaviour(kind, names)
        if wrong:
            return f"a value whose {wrong} is not installed code"
        if isinstance_(value, dict):  # no learner __class__ here: checked above
            for key, item in dict_items(value):
                wrong = plain(key, budget, depth + 1, names) or plain(
                    item, budget, depth + 1, names
                )
                if wrong:
                    return wrong
        elif isinstance_(value, containers):
            for base, iterate in iterators:  # C iteration, whatever a subclass's __iter__ says
                if isinstance_(value, base):
                    for item in iterate(value):
                        wrong = plain(item, budget, depth + 1, names)
                        if wrong:
                            return wrong
                    break
        elif (
            not flags_of(kind) & heap
            and module_of(kind) == "numpy"
            and name_of(kind) == "ndarray"
            and value.dtype.hasobject
        ):
            return "a NumPy array of Python objects"
        return ""  # a C type's value, or a class whose behaviour is installed (torch.Tensor)

    def learner_callable(value: Any) -> bool:
        """Code the learner wrote, called on purpose by the test (its answer, its class)."""
        kind = type_(value)
        if kind is function_type:
            return not installed_code(value)
        if kind is method_type:
            return learner_callable(value.__func__)
        if kind is builtin_type or kind is module_type:
            return False
        target = value if isinstance_(value, type_) and kind is type_ else kind
        if flags_of(target) & heap == 0:
            return False
        return any_(  # a dataclass's generated methods are installed code too
            type_(item) is function_type and not installed_code(item)
            for item in proxy_values(dict_of(target))
        )

    def patched_library_method(value: Any) -> bool:
        """A learner's function put into an installed class (``torch.Tensor.eq = ...``)."""
        if type_(value) is not method_type or not learner_callable(value.__func__):
            return False
        owner = value.__self__ if isinstance_(value.__self__, type_) else type_(value.__self__)
        for cls in mro_of(owner):
            if flags_of(cls) & heap == 0:
                continue
            items = proxy_values(dict_of(cls))
            function = value.__func__
            if any_(item is function for item in items) and any_(
                type_(item) is function_type and trusted_file(item.__code__.co_filename)
                for item in items
            ):
                return True
        return False

    def compare(values: Any) -> str:
        if type_(values) is not tuple_:
            return "the test's comparison was changed"
        budget = [max_items]
        for value in values:
            wrong = plain(value, budget, 0)
            if wrong:
                return f"{wrong} cannot be compared in a test"
        return ""

    def call(values: Any) -> str:
        if type_(values) is not tuple_ or len_(values) not in (3, 4):
            return "the test's call was changed"
        if len_(values) == 4:  # owner.name(...)
            owner, name, args, kwargs = values
            if type_(owner) is module_type:
                namespace = module_dict(owner)
                function = dict_get(namespace, name)
                if learner_callable(function):
                    module = dict_get(namespace, "__name__")
                    module = module if type_(module) is str_ else "a module"
                    return f"{module}.{name} is code the learner put there, not the library's"
            elif learner_behaviour(type_(owner)) or learner_callable(owner):
                return ""  # a method of the learner's own object: their answer
            else:
                function = getattr_(owner, name)  # an installed class: its own lookup
        else:
            function, args, kwargs = values
        if patched_library_method(function):
            return "a library method replaced by learner code cannot be called in a test"
        if id_(function) in identity or learner_callable(function):
            return ""
        budget = [max_items]
        for value in (*args, *dict_values(kwargs)):
            wrong = plain(value, budget, 0, arguments)
            if wrong:
                return f"{wrong} cannot be passed to a library function in a test"
        return ""

    return compare, call, learner_callable


__all__ = ["BEHAVIOUR", "checker"]
