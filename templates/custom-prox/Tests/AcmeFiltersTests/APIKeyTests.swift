import AcmeFilters
import ProxCore
import ProxFilterTesting
import Testing

@Suite struct APIKeyTests {
    static let bed = FilterTestbed([FilterDescriptor(APIKeyFactory.self)])

    @Test(arguments: [
        ([("X-Api-Key", "0123456789abcdef")], true),
        ([("x-api-key", "0123456789abcdef")], true),
        ([("X-Api-Key", "0123456789abcdeX")], false),
        ([], false),
    ] as [([(String, String)], Bool)])
    func decides(_ headers: [(String, String)], _ pass: Bool) throws {
        let r = Self.bed.compile(FilterTestbed.config(routes: """
          - id: r
            chain: [{api_key: {keys: [0123456789abcdef]}}]
            proxy: up
        """))
        let s = try #require(r.snapshot, "\(r.diagnostics)")
        let (v, _) = Self.bed.run(Self.bed.request(s, headers: headers))
        if case .respond(let resp) = v {
            #expect(!pass)
            #expect(resp.status == 401)
        } else {
            #expect(pass)
        }
    }
}
