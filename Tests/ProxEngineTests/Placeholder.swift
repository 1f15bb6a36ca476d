import Testing

@Test func placeholder_ProxEngineTests() {}
