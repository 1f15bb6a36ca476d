import Testing

@Test func placeholder_ProxRegexTests() {}
