import Foundation
import Testing

/// The examples of README.md and docs/CLI.md are checked against the real binary, so they
/// cannot drift from it. A fenced block right after a marker comment is checked:
///
/// - `<!-- checked: file PATH -->`: the block is the file's text (a config the tour writes).
/// - `<!-- checked: run [NAME=PATH ...] -->`: the block starts with `$ prox ARGS` (a `\` at a
///   line's end continues it); the rest is what the command prints, stdout then stderr. It runs
///   in the repository, or, when files are named, in a fresh directory holding a copy of each
///   PATH as NAME (the tour's `my.yaml`).
///
/// `PROX_UPDATE_DOCS=1 swift test --filter DocExamplesTests` rewrites the outputs in place.
@Suite(.serialized) struct DocExamplesTests {
    static let root = CLITests.root
    static let documents = ["README.md", "docs/CLI.md"]
    static let update = ProcessInfo.processInfo.environment["PROX_UPDATE_DOCS"] == "1"

    struct Block {
        var marker: String
        /// Line indices of the block's content (between the fences).
        var content: Range<Int>
    }

    static func blocks(_ lines: [String]) -> [Block] {
        var out: [Block] = []
        var i = 0
        while i < lines.count {
            let l = lines[i].trimmingCharacters(in: .whitespaces)
            if l.hasPrefix("<!-- checked:"), l.hasSuffix("-->"), i + 1 < lines.count, lines[i + 1].hasPrefix("```") {
                let marker = String(l.dropFirst("<!-- checked:".count).dropLast(3)).trimmingCharacters(in: .whitespaces)
                var j = i + 2
                while j < lines.count, !lines[j].hasPrefix("```") { j += 1 }
                out.append(Block(marker: marker, content: (i + 2)..<j))
                i = j
            }
            i += 1
        }
        return out
    }

    /// Splits a command line as a POSIX shell would for the simple words docs use: single and
    /// double quotes, no expansion.
    static func words(_ s: String) -> [String] {
        var out: [String] = [], cur = "", quote: Character? = nil, inWord = false
        for c in s {
            if let q = quote {
                if c == q { quote = nil } else { cur.append(c) }
            } else if c == "'" || c == "\"" {
                quote = c; inWord = true
            } else if c == " " {
                if inWord { out.append(cur); cur = ""; inWord = false }
            } else {
                cur.append(c); inWord = true
            }
        }
        if inWord { out.append(cur) }
        return out
    }

    /// What the block should hold, from the real files and the real binary.
    static func expected(_ b: Block, _ lines: [String]) throws -> [String] {
        let content = Array(lines[b.content])
        let parts = words(b.marker)
        if parts.first == "file", parts.count == 2 {
            let text = try String(contentsOf: root.appendingPathComponent(parts[1]), encoding: .utf8)
            return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        }
        #expect(parts.first == "run", "unknown marker '\(b.marker)'")
        var commandLines = 0, command = ""
        for l in content {
            commandLines += 1
            if l.hasSuffix("\\") { command += l.dropLast() + " "; continue }
            command += l
            break
        }
        #expect(command.hasPrefix("$ prox "), "a run block starts with `$ prox`: \(command)")
        var cwd = root
        let files = parts.dropFirst()
        if !files.isEmpty {
            cwd = FileManager.default.temporaryDirectory.appendingPathComponent("prox-doc-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: cwd, withIntermediateDirectories: true)
            for f in files {
                let kv = f.split(separator: "=", maxSplits: 1).map(String.init)
                try FileManager.default.copyItem(at: root.appendingPathComponent(kv[1]), to: cwd.appendingPathComponent(kv[0]))
            }
        }
        let r = try CLITests.prox(Array(words(String(command.dropFirst(2))).dropFirst()), cwd: cwd)
        let printed = (r.out + r.err).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        return Array(content[0..<commandLines]) + (printed.last == "" ? Array(printed.dropLast()) : printed)
    }

    @Test(arguments: documents) func examplesMatchTheBinary(_ document: String) throws {
        let url = Self.root.appendingPathComponent(document)
        var lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let blocks = Self.blocks(lines)
        #expect(blocks.count >= 2, "\(document) has checked examples")
        var edited = false
        // From the last block up, so earlier ranges stay valid when a block changes length.
        for b in blocks.reversed() {
            let want = try Self.expected(b, lines)
            let have = Array(lines[b.content])
            if want != have {
                if Self.update {
                    lines.replaceSubrange(b.content, with: want)
                    edited = true
                } else {
                    #expect(have == want, """
                    \(document) line \(b.content.lowerBound + 1) (\(b.marker)) differs from the binary; \
                    PROX_UPDATE_DOCS=1 rewrites it. The binary says:
                    \(want.joined(separator: "\n"))
                    """)
                }
            }
        }
        if edited { try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8) }
    }

    /// CONFIG.md's claims about where filters are registered quote the lines that do it.
    @Test func configDocQuotesTheRegistrationLines() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/CONFIG.md"), encoding: .utf8)
        let builtin = try String(contentsOf: Self.root.appendingPathComponent("Sources/ProxFilters/BuiltinFilters.swift"), encoding: .utf8)
        let custom = try String(contentsOf: Self.root.appendingPathComponent("Sources/ProxMain/CustomFilters.swift"), encoding: .utf8)
        for (quoted, file, text) in [("FilterDescriptor(BodyLimitFactory.self),", "BuiltinFilters.swift", builtin),
                                     ("try r.register(FilterDescriptor(TenantFactory.self))", "CustomFilters.swift", custom)] {
            #expect(doc.contains("`\(quoted)`"), "CONFIG.md quotes \(quoted)")
            #expect(text.contains(quoted), "\(file) has the line CONFIG.md quotes: \(quoted)")
        }
    }
}
