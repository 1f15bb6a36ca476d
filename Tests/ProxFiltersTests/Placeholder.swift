import Testing

@Test func placeholder_ProxFiltersTests() {}
