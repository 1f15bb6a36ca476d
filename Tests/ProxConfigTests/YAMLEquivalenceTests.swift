import Foundation
import ProxConfig
import Testing

/// Issue 8: the YAML loader is our own composer over libyaml's events now. It must give the
/// same tree (kinds, scalar types, positions, paths, value columns, key positions) and the same
/// diagnostics as the Yams-based loader it replaced (ReferenceYAMLLoader), on every example
/// config, on hand-written malformed documents, and on mutations of the examples.
@Suite struct YAMLEquivalenceTests {
    /// The tree, one line per node, with everything a diagnostic or a decoder reads.
    static func dump(_ node: ConfigNode?) -> String {
        guard let node else { return "nil" }
        var out = ""
        func walk(_ n: ConfigNode, _ indent: String) {
            let where_ = "\(n.mark) \(n.path)"
            switch n.kind {
            case .scalar(let s, let t):
                out += "\(indent)\(t) \(s.debugDescription) @\(where_) vc=\(n.valueColumn.map(String.init) ?? "-")\n"
            case .sequence(let items):
                out += "\(indent)seq @\(where_)\n"
                for i in items { walk(i, indent + "  ") }
            case .mapping(let entries):
                out += "\(indent)map @\(where_)\n"
                for e in entries {
                    out += "\(indent)  key \(e.key.debugDescription) @\(e.keyMark)\n"
                    walk(e.value, indent + "    ")
                }
            }
        }
        walk(node, "")
        return out
    }

    static func diagnostics(_ d: [Diagnostic]) -> String {
        d.map { "\($0.line):\($0.column) [\($0.path)] \($0.severity) \($0.message) | \($0.hint ?? "-")" }.joined(separator: "\n")
    }

    /// Where the two loaders differ on `text`, or nil.
    static func difference(_ text: String, file: String = "t.yaml") -> String? {
        let new = ConfigLoader.load(text: text, fileName: file)
        let old = ReferenceYAMLLoader.load(text, file: file)
        // Where the old loader could not place a repeated key in the text (it searched for it
        // there), it stopped at Yams' error; the new one reports each repeat in place.
        if old.node == nil, old.diagnostics.count == 1, old.diagnostics[0].message.hasPrefix("duplicate key") { return nil }
        let (nd, od) = (dump(new.node), dump(old.node))
        let (ndiag, odiag) = (diagnostics(new.diagnostics), diagnostics(old.diagnostics))
        if nd == od && ndiag == odiag { return nil }
        return "text:\n\(text)\n--- new diagnostics:\n\(ndiag)\n--- old diagnostics:\n\(odiag)\n"
            + (nd == od ? "" : "--- new tree:\n\(nd)\n--- old tree:\n\(od)")
    }

    static var exampleConfigs: [(String, String)] {
        let dirs = ["configs", "docs/examples", "Tests/Fuzz/config-corpus"]
        var out: [(String, String)] = []
        for d in dirs {
            let url = repoRoot.appendingPathComponent(d)
            guard let files = FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil) else { continue }
            for case let f as URL in files where ["yaml", "yml"].contains(f.pathExtension) || d.hasSuffix("corpus") {
                if let t = try? String(contentsOf: f, encoding: .utf8) { out.append((f.lastPathComponent, t)) }
            }
        }
        return out.sorted { $0.0 < $1.0 }
    }

    @Test func exampleConfigsLoadTheSame() {
        let configs = Self.exampleConfigs
        #expect(configs.count >= 5)
        for (name, text) in configs {
            let d = Self.difference(text, file: name.hasSuffix(".json") ? name + ".yaml" : name)
            #expect(d == nil, "\(name): \(d ?? "")")
        }
    }

    static let malformed: [String] = [
        "", "\n", "# only a comment\n", "---\n", "---\n...\n", "~", "a", "[]", "{}", "- a\n- b\n",
        "version: 1\nlisteners:\n  - id: main\n    address: [\n",
        "a: 1\n\tb: 2\n", "a:\n\t- x\n", "a: [1, 2\nb: 3\n", "a: {b: 1\n", "a: \"unterminated\n", "a: 'x\n",
        "a: 1\na: 2\n", "a: 1\nb: 2\na: 3\na: 4\n", "{a: 1, b: 2, a: 3}", "- {x: 1, x: 2}\n- y: 1\n  y: 2\n",
        "\"a\": 1\na: 2\n", "'a': 1\n\"a\": 2\n", "a:\n  b: 1\n  c: 2\n  b: 3\nd: 4\n",
        "a: &x {k: 1}\nb: *x\nc: *x\n", "a: &x [1, 2]\nb: [*x, *x]\n", "a: *nope\n", "a: &x 1\na: *x\n",
        "base: &b {p: 1, q: 2}\nm:\n  <<: *b\n  q: 3\n", "b1: &b1 {p: 1}\nb2: &b2 {p: 2, r: 3}\nm: {<<: [*b1, *b2], s: 4}\n",
        "m: {<<: 1}\n", "m: {<<: [1, {a: 2}]}\n", "m: {<<: {a: 1}, <<: {b: 2}}\n", "m: {\"<<\": {a: 1}}\n",
        "a: &d {x: 1, x: 2}\nb: *d\nc: *d\n", "a: &k key\n*k : 1\n", "? [a, b]\n: 1\nc: 2\n", "? {a: 1}\n: 2\n",
        "a: 1\n---\nb: 2\n", "a: 1\n---\n[\n", "%YAML 1.2\n---\na: 1\n", "a: !!int \"5\"\nb: !!str 5\nc: !foo 7\nd: ! 8\n",
        "a: !!bool true\nb: !!null ''\nc: !!float 1\n", "a: |\n  line one\n  line two\nb: >\n  folded\n  text\n",
        "a: \"esc\\tape\"\nb: 'it''s'\nc: \"plain\"\n", "a: ünïcödé\nb: \"ü\": 1\n", "ü: {é: ö}\n",
        "a: 1\r\nb: [x, y]\r\n", "a: 1\rb: 2\r", "\u{FEFF}a: 1\n", "a: 1\u{2028}b: 2\n", "a: 1\u{85}b: 2\n",
        "a: \u{7}\n", "a: b: c\n", "- a\nb: 1\n", "a:\n- b\n- c\n", "a: [b, c]]\n", "a: }\n", "&a [*a]\n",
        "a: &a [1]\nb: &a [2]\nc: *a\n", "a: [*b]\nb: &b 1\n", "a: 0x1F\nb: 0o17\nc: +12\nd: -3.5e2\ne: .5\nf: 1.\ng: .\nh: 1e\n",
        "a: off\nb: on\nc: yes\nd: No\ne: TRUE\nf: Null\ng: .NaN\nh: -.inf\n", "a: 'multi\n  line'\nb: \"x\n  y\"\n",
        "a: plain\n  continued\n", "key with spaces: 1\n\"q\\\"k\": 2\n\"x.y\": 3\n", "a: [1, [2, [3, {b: [4]}]]]\n",
        "a: 1 # comment\nb: 'x' # c\n", "a: 1\n# trailing comment\n\n", "a:\n", "a: ''\nb: \"\"\n", "- - - x\n",
        "routes:\n  - id: r\n    match: {path: {exact: /a}}\n    id: again\n    respond: {status: 200}\n",
        "x: &a0 [q, q]\ny: &a1 [*a0, *a0]\nz: [*a1, *a1]\n",
    ]

    @Test func malformedDocumentsLoadTheSame() {
        for text in Self.malformed {
            let d = Self.difference(text)
            #expect(d == nil, "\(d ?? "")")
        }
    }

    /// The examples with small edits (characters deleted or inserted, lines repeated or cut),
    /// from a fixed seed: mostly invalid YAML, some valid with repeated keys.
    @Test func mutatedExamplesLoadTheSame() {
        var rng = SplitMix64(seed: 8)
        let inserts = [":", "[", "]", "{", "}", "\"", "'", "\t", " ", "&a ", "*a", "- ", "<<: ", "#", ",", "\n", "? ", "!!str ", "|"]
        let bases = Self.exampleConfigs.map(\.1).filter { $0.utf8.count < 20_000 }
        var checked = 0
        for _ in 0..<600 {
            let base = bases[Int(rng.next() % UInt64(bases.count))]
            var s = Array(base.unicodeScalars)
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                guard !s.isEmpty else { break }
                let at = Int(rng.next() % UInt64(s.count))
                switch rng.next() % 4 {
                case 0: s.remove(at: at)
                case 1: s.insert(contentsOf: inserts[Int(rng.next() % UInt64(inserts.count))].unicodeScalars, at: at)
                case 2:
                    // Repeat the line around `at` (a repeated key, often).
                    let start = s[..<at].lastIndex(of: "\n").map { $0 + 1 } ?? 0
                    let end = s[at...].firstIndex(of: "\n").map { $0 + 1 } ?? s.count
                    s.insert(contentsOf: s[start..<end], at: end)
                default: s = Array(s[..<at])
                }
            }
            var text = ""
            text.unicodeScalars.append(contentsOf: s)
            let d = Self.difference(text)
            #expect(d == nil, "\(d ?? "")")
            if d != nil { break }
            checked += 1
        }
        #expect(checked == 600)
    }
}
