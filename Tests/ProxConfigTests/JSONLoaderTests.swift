import ProxConfig
import Testing

@Suite struct JSONLoaderTests {
    let doc = """
    {
      "version": 1,
      "listeners": [{"id": "main", "address": "127.0.0.1:8080"}],
      "routes": [
        {"id": "r", "match": {"path": {"regex": "^/a/(x"}}, "respond": {"status": 200}}
      ]
    }
    """

    @Test func positionsAndPaths() {
        let r = ConfigCompiler.compile(text: doc, fileName: "c.json", version: 1)
        #expect(r.diagnostics.count == 1)
        let d = r.diagnostics[0]
        // The pattern's value starts at column 46; offset 6 is its end.
        #expect("\(d.line):\(d.column)" == "5:52", "\(d)")
        #expect(d.path == "routes[0].match.path.regex")
    }

    @Test func nodes() {
        let (node, diags) = ConfigLoader.load(text: "{\n  \"a\": [1, 2.5, true, null, \"s\"],\n  \"b\": {\"c\": \"d\"}\n}", fileName: "x.json")
        #expect(diags.isEmpty)
        guard let node, let a = node["a"]?.items, let c = node["b"]?["c"] else { Issue.record("no node"); return }
        #expect(a.map(\.kindDescription) == ["an integer", "a number", "a boolean", "null", "a string"])
        #expect(a[1].path == "a[1]")
        #expect(a[1].mark.line == 2 && a[1].mark.column == 12)
        #expect(c.path == "b.c")
        #expect(c.string == "d")
        #expect(c.mark.line == 3 && c.mark.column == 14)
    }

    @Test(arguments: [
        ("{\"a\": 1,}", "1:9", "a trailing comma before '}'"),
        ("{\"a\": [1, 2,]}", "1:13", "a trailing comma before ']'"),
        ("{\"a\": 'x'}", "1:7", "expected a value"),
        ("{\"a\": 1 \"b\": 2}", "1:9", "expected ',' or '}'"),
        ("{\"a\": \"x}", "1:10", "unterminated string"),
        ("{\"a\": 01}", "1:7", "numbers do not start with 0"),
        ("{\"a\": 1}\n{}", "2:1", "unexpected text after the document"),
    ])
    func syntaxErrors(_ text: String, _ position: String, _ message: String) {
        let r = ConfigCompiler.compile(text: text, fileName: "x.json", version: 1)
        #expect(r.diagnostics.count == 1)
        guard let d = r.diagnostics.first else { return }
        #expect("\(d.line):\(d.column)" == position, "\(d)")
        #expect(d.message.contains(message), "\(d)")
    }

    @Test func duplicateKeyAtSecondOccurrence() {
        let r = ConfigCompiler.compile(text: "{\"version\": 1,\n \"version\": 1, \"listeners\": [{\"id\": \"m\", \"address\": \":80\"}], \"routes\": []}", fileName: "x.json", version: 1)
        #expect(r.diagnostics.count == 1)
        #expect(r.diagnostics.first.map { "\($0.line):\($0.column)" } == "2:2")
        #expect(r.diagnostics.first?.message == "duplicate key 'version'")
    }

    @Test func escapesAndUnicode() {
        let (node, diags) = ConfigLoader.load(text: "{\"k\": \"a\\n\\u00e9\\ud83d\\ude00\\/\", \"é\": \"x\"}", fileName: "x.json")
        #expect(diags.isEmpty)
        #expect(node?["k"]?.string == "a\né😀/")
        #expect(node?["é"]?.mark.column == 39)
    }

    @Test func formatDetection() {
        #expect(ConfigLoader.format(fileName: "a.json", text: "x: 1") == .json)
        #expect(ConfigLoader.format(fileName: "a.yml", text: "{}") == .yaml)
        #expect(ConfigLoader.format(fileName: "-", text: "  {\"a\": 1}") == .json)
        #expect(ConfigLoader.format(fileName: "-", text: "a: 1") == .yaml)
    }

    @Test func sameConfigInJSONAndYAML() {
        let json = """
        {"$schema": "../schemas/prox.schema.json", "version": 1,
         "listeners": [{"id": "main", "address": "127.0.0.1:8080"}],
         "pools": [{"id": "api", "endpoints": ["127.0.0.1:9000"]}],
         "routes": [{"id": "r", "match": {"path": {"prefix": "/"}}, "chain": ["request_id"], "proxy": "api"}]}
        """
        let s = valid(json, file: "c.json")
        #expect(s?.routes.first?.id == "r")
        #expect(s?.routes.first?.chain.stages.map(\.kind) == ["request_id"])
    }
}
