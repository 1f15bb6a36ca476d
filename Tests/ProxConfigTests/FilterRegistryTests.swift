import ProxConfig
import ProxFilters
import Testing

@Suite struct FilterRegistryTests {
    /// A second filter that calls itself `body_limit`.
    enum ImpostorFactory: FilterFactory {
        static let name = "body_limit"
        static let summary = "Not the real one."
        static func makeStage(_ config: BodyLimitConfig, _ context: inout FilterBuildContext) -> (any Stage)? { nil }
    }

    @Test func refusesADuplicateNameNamingBothRegistrations() {
        var r = BuiltinFilters.registry
        #expect(throws: FilterRegistry.DuplicateName.self) { try r.register(FilterDescriptor(ImpostorFactory.self)) }
        do {
            try r.register(FilterDescriptor(ImpostorFactory.self))
        } catch {
            let text = error.description
            #expect(text.hasPrefix("filter 'body_limit' is registered twice: first as ProxFilters.BodyLimitFactory (built-in, at ProxFilters/BuiltinFilters.swift:"))
            #expect(text.contains("then as ProxConfigTests.FilterRegistryTests.ImpostorFactory (custom, at ProxConfigTests/FilterRegistryTests.swift:"))
        }
        #expect(r.names == ["request_id", "headers", "ip_access", "body_limit", "ext_filter"], "a refused registration leaves the registry as it was")
    }

    @Test func compilerDecodesOnlyTheRegisteredFilters() {
        let yaml = """
        version: 1
        listeners: [{id: main, address: "127.0.0.1:8080"}]
        routes:
          - id: r
            chain: [{body_limit: {max_bytes: 1KiB}}]
            respond: {status: 200}
        """
        #expect(ConfigCompiler.compile(text: yaml, fileName: "f.yaml", version: 1).snapshot != nil)
        let none = ConfigCompiler.compile(text: yaml, fileName: "f.yaml", version: 1, filters: FilterRegistry())
        #expect(none.errors.map(\.message) == ["unknown filter 'body_limit'"])
    }
}
