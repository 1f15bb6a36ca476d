import Testing

@Test func placeholder_ProxUpstreamTests() {}
