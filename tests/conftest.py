from hypothesis import HealthCheck, settings

# CI machines are small and shared: timing-based health checks would make property tests flaky.
settings.register_profile(
    "mixweave", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, print_blob=True
)
settings.load_profile("mixweave")

# Scripts run by other interpreters (tests/peers: MosaicML Streaming's environment), not by pytest.
collect_ignore = ["peers"]
