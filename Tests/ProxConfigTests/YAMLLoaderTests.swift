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

    /// The deepest nesting libyaml accepts is composed (our composer recurses once per level),
    /// and one level more is refused by libyaml.
    @Test func deepestAcceptedNestingLoads() {
        func nested(_ n: Int) -> String { "a: " + String(repeating: "[", count: n) + "x" + String(repeating: "]", count: n) + "\n" }
        var deepest = 0
        for n in stride(from: 990, through: 1010, by: 1) {
            let (node, diags) = ConfigLoader.load(text: nested(n), fileName: "deep.yaml")
            if node != nil, diags.isEmpty { deepest = n } else {
                #expect(diags.first?.message.contains("nesting") == true, "\(diags)")
                break
            }
        }
        #expect(deepest >= 990)
        var node = ConfigLoader.load(text: nested(deepest), fileName: "deep.yaml").node?["a"]
        var depth = 0
        while let first = node?.items?.first { node = first; depth += 1 }
        #expect(depth == deepest && node?.scalar == "x")
    }

    /// Aliases inside aliases could nest past libyaml's bound (and recurse without end); the
    /// composer refuses them past `YAMLLoader.maxDepth` levels with one diagnostic.
    @Test func nestingThroughAliasesIsBounded() {
        let open = String(repeating: "[", count: 900), close = String(repeating: "]", count: 900)
        let text = "version: 1\na0: &a0 \(open)x\(close)\na1: &a1 \(open)*a0\(close)\nb: *a1\n"
        let (node, diags) = ConfigLoader.load(text: text, fileName: "deep.yaml")
        #expect(node == nil)
        #expect(diags.count == 1 && diags.first?.message.contains("more than 1500 levels deep") == true, "\(diags)")
        #expect(diags.first.map { "\($0.line)" } == "2", "\(diags)")
    }

    /// Anchors shared by many values stay within the budget.
    @Test func modestAliasUseIsAccepted() {
        var text = preludeNoPools + "routes:\n  - id: r0\n    match: &m {methods: [GET], path: {exact: /p/0}}\n    respond: &ok {status: 200}\n"
        for i in 1..<500 { text += "  - id: r\(i)\n    match: {<<: *m, path: {exact: /p/\(i)}}\n    respond: *ok\n" }
        let r = ConfigCompiler.compile(text: text, fileName: "many.yaml", version: 1)
        #expect(r.errors.isEmpty, "\(r.errors.prefix(3))")
    }
}
