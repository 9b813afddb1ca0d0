"""The SQLite engine implements the storage interface exactly as the interface declares it."""

import inspect

import pytest

from gateway.pool.sqlite import Store
from gateway.pool.storage import Storage


def interface_operations() -> list[str]:
    return sorted(
        name
        for klass in Storage.__mro__
        if getattr(klass, "_is_protocol", False)
        for name, member in vars(klass).items()
        if inspect.iscoroutinefunction(member)
    )


def test_the_interface_lists_the_operations_of_every_concern() -> None:
    assert {"load_state", "open_activation", "store_sms", "due_pushes", "load_bank", "ping"} <= set(
        interface_operations()
    )
    assert "run" not in interface_operations()  # a connection never crosses the interface


@pytest.mark.parametrize("name", interface_operations())
def test_the_sqlite_store_implements_each_operation_with_its_signature(name: str) -> None:
    declared = inspect.signature(getattr(Storage, name))
    implemented = getattr(Store, name)
    assert inspect.iscoroutinefunction(implemented)
    assert list(inspect.signature(implemented).parameters) == list(declared.parameters)
    for parameter in declared.parameters.values():
        assert inspect.signature(implemented).parameters[parameter.name].kind == parameter.kind
