"""Price curves: store each PriceCurveCreated, work out what is in force after newer curves,
hand each target its plan, and check every afternoon that tomorrow's curve came."""
