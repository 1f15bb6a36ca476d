import Testing

@Test func placeholder_ProxConfigTests() {}
