"""Queue pressure: levels with hysteresis, admission by priority, and rate limiting."""
