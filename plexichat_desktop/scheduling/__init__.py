"""Pure, clock-injected scheduling core: schedule expressions and misfire planning."""
