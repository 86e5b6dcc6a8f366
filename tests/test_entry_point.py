"""python -m plexichat_desktop: which arguments reach the test runner's child modes."""

import ast
from pathlib import Path


def test_every_child_mode_flag_is_seen_by_the_entry_point():
    # __main__ imports the child modes only for a first argument with this prefix.
    import plexichat_desktop
    from plexichat_desktop.testing import child

    main = Path(plexichat_desktop.__file__).with_name("__main__.py")
    prefix = next(node.value.value for node in ast.parse(main.read_text()).body
                  if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", "") == "CHILD_FLAG_PREFIX")
    flags = [value for name, value in vars(child).items()
             if name.endswith("_FLAG") and isinstance(value, str)]
    assert len(flags) == 3 and all(flag.startswith(prefix) for flag in flags)
