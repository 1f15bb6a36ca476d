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
}
