import Foundation
import ProxConfig
import Testing

@Suite struct YAMLLoaderTests {
    @Test func coreSchemaTypes() {
        let (node, diags) = ConfigLoader.load(text: """
        a: off
        b: true
        c: 8080
        d: "8080"
        e: 1.5
        f: ~
        g: yes
        h: 1e3
        i: '007'
        """, fileName: "x.yaml")
        #expect(diags.isEmpty)
        let kinds = ["a", "b", "c", "d", "e", "f", "g", "h", "i"].map { node?[$0]?.kindDescription ?? "-" }
        #expect(kinds == ["a string", "a boolean", "an integer", "a string", "a number", "null", "a string", "a number", "a string"])
    }

    @Test func positionsAndValueColumns() {
        let (node, _) = ConfigLoader.load(text: "top:\n  - key: 'quoted'\n    other: plain value\n", fileName: "x.yaml")
        let item = node?["top"]?.items?.first
        #expect(item?.path == "top[0]")
        #expect(item?["key"]?.mark == SourceMark(file: "x.yaml", line: 2, column: 10))
        #expect(item?["key"]?.valueColumn == 11)
        #expect(item?["other"]?.valueColumn == 12)
        #expect(item?.entry("other")?.keyMark == SourceMark(file: "x.yaml", line: 3, column: 5))
        #expect(item?["other"]?.path == "top[0].other")
    }

    @Test func anchorsAndMergeKeys() {
        let s = valid(preludeNoPools + """
        routes:
          - id: a
            match: &m {path: {prefix: /a/}, methods: [GET]}
            respond: &ok {status: 200, body: "ok"}
          - id: b
            match:
              <<: *m
              path: {prefix: /b/}
            respond: *ok
        """)
        #expect(s?.routes.count == 2)
        #expect(s?.routes[1].match.methods == [.get])
        #expect(s?.routes[1].match.path?.description == "/b/*")
    }

    @Test func pathsQuoteOddKeys() {
        let r = compile(prelude + """
        routes:
          - id: r
            match:
              headers:
                "X Bad": "1"
            proxy: api
        """)
        #expect(r.diagnostics.first?.path == "routes[0].match.headers[\"X Bad\"]")
    }
    /// Found by scripts/fuzz-config.sh: aliases of aliases ("billion laughs") expanded to 10^9
    /// nodes, hanging the loader and growing memory without bound. The loader now refuses a
    /// document past its node budget, at once and with one diagnostic.
    @Test func aliasExpansionIsBounded() {
        var text = "version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for i in 1...8 { text += "a\(i): &a\(i) [" + Array(repeating: "*a\(i - 1)", count: 10).joined(separator: ", ") + "]\n" }
        let clock = ContinuousClock()
        var r: CompileResult?
        let took = clock.measure { r = ConfigCompiler.compile(text: text, fileName: "laughs.yaml", version: 1) }
        #expect(r?.snapshot == nil)
        #expect(r?.diagnostics.count == 1)
        #expect(r?.diagnostics.first?.message.hasPrefix("the document expands to more than") == true)
        #expect((r?.diagnostics.first?.line ?? 0) >= 1)
        #expect(took < .seconds(20))
    }

    /// Deep nesting is refused by libyaml (and by JSONLoader at 200 levels), not a stack overflow.
    @Test func deepNestingIsRefused() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        let y = ConfigCompiler.compile(text: deep, fileName: "deep.yaml", version: 1)
        #expect(y.snapshot == nil && y.errors.first?.message.contains("nesting") == true)
        let j = ConfigCompiler.compile(text: deep, fileName: "deep.json", version: 1)
        #expect(j.snapshot == nil && j.errors.first?.message.contains("nested too deeply") == true)
    }

    /// Anchors shared by many values stay within the budget.
    @Test func modestAliasUseIsAccepted() {
        var text = preludeNoPools + "routes:\n  - id: r0\n    match: &m {methods: [GET], path: {exact: /p/0}}\n    respond: &ok {status: 200}\n"
        for i in 1..<500 { text += "  - id: r\(i)\n    match: {<<: *m, path: {exact: /p/\(i)}}\n    respond: *ok\n" }
        let r = ConfigCompiler.compile(text: text, fileName: "many.yaml", version: 1)
        #expect(r.errors.isEmpty, "\(r.errors.prefix(3))")
    }
}
