import Testing

@Test func placeholder_ProxCoreTests() {}
