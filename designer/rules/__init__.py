"""Rule registry and rule sets: `check(layout, rule_sets)` and `fix_all(layout, rule_sets)`.

Rule modules register themselves on import; `load_all()` imports them once."""
from designer.rules.engine import (RULES, Fix, Rule, Violation, apply_edit, check, fix_all, has_errors,
                                   rule_sets, select, violations_to_json)

_loaded = False


def load_all() -> None:
    global _loaded
    if not _loaded:
        from designer.rules import constraints, nemotron_h, structural  # noqa: F401  (registration)
        _loaded = True


def all_rules() -> dict[str, Rule]:
    load_all()
    return dict(RULES)


__all__ = ["RULES", "Fix", "Rule", "Violation", "apply_edit", "check", "fix_all", "has_errors", "rule_sets",
           "select", "violations_to_json", "load_all", "all_rules"]
