import CYaml
import ProxCore

/// YAML through our own composer over libyaml's event API (libyaml is the C target `CYaml` that
/// the Yams package vendors), building `ConfigNode`s directly: every node keeps its position.
/// Plain scalars resolve with the YAML 1.2 core schema, as editors do: `off` is a string.
/// Anchors, aliases and merge keys (`<<: *defaults`) work, within a budget: aliases of aliases
/// expand exponentially ("billion laughs": nine lines of `&a [*b, *b, ...]` make 10^9 nodes), so a
/// document may expand to at most `nodeBudget(forBytes:)` nodes; past that it is refused with one
/// diagnostic instead of hanging the loader and eating memory. Nesting depth is bounded by
/// libyaml itself ("Maximum nesting level reached", about 1000) and, through aliases, by `maxDepth`.
/// A key written twice in one mapping is reported at its second occurrence (the first value is
/// kept), beside every other problem.
enum YAMLLoader {
    /// Without aliases every node takes at least one byte of text, so twice the text's size
    /// never refuses an alias-free document; aliases may add 100,000 nodes on top.
    static func nodeBudget(forBytes n: Int) -> Int { 100_000 + 2 * n }

    /// The deepest nesting the composer follows, counting what aliases bring in: libyaml refuses
    /// text nested past about 1000 collections already, so only aliases inside aliases reach it
    /// (and would otherwise recurse without bound).
    static let maxDepth = 1500

    static func load(_ text: String, file: String) -> (node: ConfigNode?, diagnostics: [Diagnostic]) {
        var text = text
        return text.withUTF8 { bytes in
            guard bytes.count > 0 else { return (nil, [emptyDocument(file)]) }
            let c = Composer(bytes: bytes, file: file)
            defer { c.close() }
            do throws(Diagnostic) {
                guard let root = try c.composeDocument() else { return (nil, [emptyDocument(file)]) }
                if let first = c.exhaustedAt {
                    return (nil, [Diagnostic(at: first, path: "", "the document expands to more than \(nodeBudget(forBytes: bytes.count)) values",
                                             hint: "aliases (*name) repeat what their anchor holds; aliases of aliases multiply")])
                }
                return (root, c.diagnostics)
            } catch {
                return (nil, [error])
            }
        }
    }

    static func emptyDocument(_ file: String) -> Diagnostic {
        Diagnostic(file: file, line: 1, column: 1, path: "", message: "the document is empty",
                   hint: "start with `version: 1`; `prox schema` prints the full format")
    }

    // MARK: - Events

    /// One libyaml event, copied out of libyaml's buffers (anchors' events are kept to replay).
    struct Event {
        enum Kind: UInt8 { case scalar, sequenceStart, sequenceEnd, mappingStart, mappingEnd, alias, documentEnd, streamEnd, other }
        var kind: Kind
        var line: Int
        var column: Int
        /// A scalar's text.
        var value: String = ""
        var style: yaml_scalar_style_t = YAML_ANY_SCALAR_STYLE
        /// The type an explicit tag (or quoting) gives a scalar; nil to resolve it from its text.
        var taggedType: ScalarType? = nil
        /// The anchor a node defines (`&name`); only on events read from the text.
        var anchor: String? = nil
        /// For an alias: the recording of the node it names.
        var target: Int = -1

        var isPlain: Bool { style == YAML_PLAIN_SCALAR_STYLE }
        var isQuoted: Bool { style == YAML_SINGLE_QUOTED_SCALAR_STYLE || style == YAML_DOUBLE_QUOTED_SCALAR_STYLE }

        /// The scalar's type: its tag's, else (plain scalars) the core schema's, else a string.
        var scalarType: ScalarType {
            if let t = taggedType { return t }
            return isPlain || style == YAML_ANY_SCALAR_STYLE ? YAMLLoader.resolvePlain(value) : .string
        }
    }

    /// Reads events from libyaml, records the events of anchored nodes and replays them for
    /// aliases, and builds the `ConfigNode` tree.
    final class Composer {
        let parser: UnsafeMutablePointer<yaml_parser_t>
        let event: UnsafeMutablePointer<yaml_event_t>
        let bytes: UnsafeBufferPointer<UInt8>
        let file: String
        /// Byte offset of each line's start, lines split at LF only (columns of values checked
        /// against the text, see `valueColumn`).
        private var lineStarts: [Int] = []
        /// The text is ASCII: a column (in characters) is then a byte offset in its line.
        private var isASCII = false
        /// Nodes left to build; below 0 the document is refused (see `nodeBudget`).
        var budget: Int
        /// Where the budget ran out.
        var exhaustedAt: SourceMark?
        var diagnostics: [Diagnostic] = []
        /// The events of each anchored node, in the order the anchors were read.
        private var recordings: [[Event]] = []
        /// Anchor name -> its latest recording (a later anchor of the same name shadows it).
        private var anchors: [String: Int] = [:]
        /// Recordings still being written: every event read from the text is added to each.
        private var open: [Int] = []
        /// Recordings being replayed (for aliases), innermost last, with the next event's index.
        private var replaying: [(recording: Int, index: Int)] = []
        private var depth = 0

        init(bytes: UnsafeBufferPointer<UInt8>, file: String) {
            self.bytes = bytes
            self.file = file
            self.budget = YAMLLoader.nodeBudget(forBytes: bytes.count)
            parser = .allocate(capacity: 1)
            event = .allocate(capacity: 1)
            yaml_parser_initialize(parser)
            yaml_parser_set_encoding(parser, YAML_UTF8_ENCODING)
            yaml_parser_set_input_string(parser, bytes.baseAddress, bytes.count)
            // Eight bytes at a time (a byte loop cost 9 instructions a byte): a word is searched
            // for LF only when it has a zero byte once XORed with eight LFs.
            var starts = [0]
            var any: UInt64 = 0
            var i = 0
            if let base = UnsafeRawPointer(bytes.baseAddress) {
                while i + 8 <= bytes.count {
                    let w = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                    any |= w
                    let x = w ^ 0x0a0a_0a0a_0a0a_0a0a
                    if (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080 != 0 {
                        for j in i..<i + 8 where bytes[j] == UInt8(ascii: "\n") { starts.append(j + 1) }
                    }
                    i += 8
                }
            }
            while i < bytes.count {
                any |= UInt64(bytes[i])
                if bytes[i] == UInt8(ascii: "\n") { starts.append(i + 1) }
                i += 1
            }
            lineStarts = starts
            isASCII = any & 0x8080_8080_8080_8080 == 0
        }

        func close() {
            yaml_parser_delete(parser)
            parser.deallocate()
            event.deallocate()
        }

        func mark(_ e: Event) -> SourceMark { SourceMark(file: file, line: e.line, column: e.column) }

        // MARK: reading

        /// The root node of the only document; nil for an empty stream.
        func composeDocument() throws(Diagnostic) -> ConfigNode? {
            _ = try readLive()  // stream start
            var e = try readLive()
            if e.kind == .streamEnd { return nil }
            // e is the document start; then the root node.
            e = try next()
            let root = try build(e, at: .root)
            _ = try readLive()  // document end
            let after = try readLive()
            if after.kind != .streamEnd {
                throw YAMLLoader.diagnostic(problem: "but found another document", line: after.line, column: after.column,
                                            context: ("expected a single document in the stream", 1, 1), file: file, bytes: bytes)
            }
            return root
        }

        /// The next event: from the innermost alias being replayed, else from the text.
        func next() throws(Diagnostic) -> Event {
            while let r = replaying.last {
                if r.index < recordings[r.recording].count {
                    replaying[replaying.count - 1].index += 1
                    return recordings[r.recording][r.index]
                }
                replaying.removeLast()
            }
            let e = try readLive()
            if !open.isEmpty {
                var kept = e
                kept.anchor = nil
                for r in open { recordings[r].append(kept) }
            }
            return e
        }

        private func readLive() throws(Diagnostic) -> Event {
            guard yaml_parser_parse(parser, event) == 1 else { throw parseError() }
            defer { yaml_event_delete(event) }
            let ev = event.pointee
            let line = Int(ev.start_mark.line) + 1, column = Int(ev.start_mark.column) + 1
            switch ev.type {
            case YAML_SCALAR_EVENT:
                let s = ev.data.scalar
                var e = Event(kind: .scalar, line: line, column: column)
                e.value = s.length == 0 ? "" : String(decoding: UnsafeBufferPointer(start: s.value, count: s.length), as: UTF8.self)
                e.style = s.style
                // As Yams resolved tags: quoted without a tag is a string; a tag names its type.
                if s.quoted_implicit == 1 {
                    e.taggedType = .string
                } else if let t = s.tag {
                    e.taggedType = Self.type(ofTag: t)
                }
                e.anchor = s.anchor.map { String(cString: $0) }
                return e
            case YAML_SEQUENCE_START_EVENT:
                var e = Event(kind: .sequenceStart, line: line, column: column)
                e.anchor = ev.data.sequence_start.anchor.map { String(cString: $0) }
                return e
            case YAML_MAPPING_START_EVENT:
                var e = Event(kind: .mappingStart, line: line, column: column)
                e.anchor = ev.data.mapping_start.anchor.map { String(cString: $0) }
                return e
            case YAML_SEQUENCE_END_EVENT: return Event(kind: .sequenceEnd, line: line, column: column)
            case YAML_MAPPING_END_EVENT: return Event(kind: .mappingEnd, line: line, column: column)
            case YAML_ALIAS_EVENT:
                let name = String(cString: ev.data.alias.anchor)
                guard let target = anchors[name] else {
                    throw YAMLLoader.diagnostic(problem: "found undefined alias", line: line, column: column,
                                                context: nil, file: file, bytes: bytes)
                }
                var e = Event(kind: .alias, line: line, column: column)
                e.target = target
                return e
            case YAML_DOCUMENT_END_EVENT: return Event(kind: .documentEnd, line: line, column: column)
            case YAML_STREAM_END_EVENT: return Event(kind: .streamEnd, line: line, column: column)
            default: return Event(kind: .other, line: line, column: column)
            }
        }

        /// A scalar's explicit tag as a type; nil for tags the core schema does not name.
        static func type(ofTag t: UnsafePointer<yaml_char_t>) -> ScalarType? {
            switch String(cString: t) {
            case "tag:yaml.org,2002:str", "!": return .string
            case "tag:yaml.org,2002:int": return .integer
            case "tag:yaml.org,2002:float": return .number
            case "tag:yaml.org,2002:bool": return .boolean
            case "tag:yaml.org,2002:null": return .null
            default: return nil
            }
        }

        private func parseError() -> Diagnostic {
            let p = parser.pointee
            let problem = p.problem.map { String(cString: $0) } ?? "unknown problem"
            let context = p.context.map { (String(cString: $0), Int(p.context_mark.line) + 1, Int(p.context_mark.column) + 1) }
            let line = Int(p.problem_mark.line) + 1, column = Int(p.problem_mark.column) + 1
            switch p.error {
            case YAML_READER_ERROR:
                // The offset as Yams gave it: in characters, when the byte starts one.
                let s = String(decoding: bytes, as: UTF8.self)
                let offset = s.utf8.index(s.utf8.startIndex, offsetBy: p.problem_offset, limitedBy: s.utf8.endIndex)?
                    .samePosition(in: s).map { s.distance(from: s.startIndex, to: $0) }
                return Diagnostic(file: file, line: 1, column: 1, path: "",
                                  message: "cannot read the YAML: \(problem)" + (offset.map { " at byte \($0)" } ?? ""))
            case YAML_SCANNER_ERROR, YAML_PARSER_ERROR, YAML_COMPOSER_ERROR:
                return YAMLLoader.diagnostic(problem: problem, line: line, column: column, context: context, file: file, bytes: bytes)
            default:
                return Diagnostic(file: file, line: 1, column: 1, path: "", message: "invalid YAML: Memory error")
            }
        }

        // MARK: building

        /// The node that starts with `e`, at `location`.
        func build(_ e: Event, at location: ConfigLocation) throws(Diagnostic) -> ConfigNode {
            if e.kind == .alias {
                guard exhaustedAt == nil else { return ConfigNode(kind: .scalar("", .null), mark: mark(e), location: location) }
                replaying.append((e.target, 0))
                return try build(next(), at: location)
            }
            budget -= 1
            guard budget >= 0 else {
                if exhaustedAt == nil { exhaustedAt = mark(e) }
                try skip(e)
                return ConfigNode(kind: .scalar("", .null), mark: mark(e), location: location)
            }
            depth += 1
            defer { depth -= 1 }
            if depth > YAMLLoader.maxDepth {
                throw Diagnostic(at: mark(e), path: location.path, "invalid YAML: aliases nest the document more than \(YAMLLoader.maxDepth) levels deep",
                                 hint: "an alias (*name) repeats what its anchor holds, aliases inside it too")
            }
            let recording = startRecording(e)
            let node: ConfigNode
            switch e.kind {
            case .scalar:
                node = ConfigNode(kind: .scalar(e.value, e.scalarType), mark: mark(e), location: location, valueColumn: valueColumn(e))
            case .sequenceStart:
                var items: [ConfigNode] = []
                var here: ConfigLocation.Parent?  // made at the first item
                while true {
                    let item = try next()
                    if item.kind == .sequenceEnd { break }
                    if here == nil { here = ConfigLocation.Parent(location) }
                    items.append(try build(item, at: ConfigLocation(here!, index: items.count)))
                }
                node = ConfigNode(kind: .sequence(items), mark: mark(e), location: location)
            case .mappingStart:
                node = ConfigNode(kind: .mapping(try buildEntries(at: location)), mark: mark(e), location: location)
            default:
                node = ConfigNode(kind: .scalar("", .null), mark: mark(e), location: location)
            }
            endRecording(e, recording)
            return node
        }

        /// The entries of a mapping whose start was just read, up to its end.
        private func buildEntries(at location: ConfigLocation) throws(Diagnostic) -> [ConfigEntry] {
            var here: ConfigLocation.Parent?  // made at the first value
            var entries: [ConfigEntry] = []
            // Most mappings have up to four keys: one allocation instead of up to three (a
            // shared stack of pending entries, copied out at each mapping's end, cost more).
            entries.reserveCapacity(4)
            var merged: [ConfigEntry] = []
            var firstMerge: SourceMark?
            var index: [String: Int]?  // key -> entry, for long mappings only
            while true {
                var k = try next()
                if k.kind == .mappingEnd { break }
                // A repeat is reported where it is written, an alias too (the key itself keeps
                // its anchor's position, as the node an alias names does).
                let written = mark(k)
                if k.kind == .alias {
                    replaying.append((k.target, 0))
                    k = try next()
                }
                guard k.kind == .scalar else {
                    diagnostics.append(Diagnostic(at: mark(k), path: location.path, "keys must be plain strings"))
                    try skip(k)
                    try skip(try next())
                    continue
                }
                endRecording(k, startRecording(k))
                let km = mark(k)
                // A key written before in this mapping: reported here, its value skipped.
                var first: SourceMark?
                if k.isPlain && k.value == "<<" {
                    first = firstMerge
                } else if let index {
                    first = index[k.value].map { entries[$0].keyMark }
                } else {
                    first = entries.first { $0.key == k.value }?.keyMark
                }
                if let first {
                    diagnostics.append(Diagnostic(at: written, path: ConfigNode.childPath(location.path, key: k.value), "duplicate key '\(k.value)'",
                                                  hint: "first written at line \(first.line), column \(first.column); the first value is used"))
                    try skip(try next())
                    continue
                }
                if k.isPlain && k.value == "<<" {
                    firstMerge = km
                    merged += try mergeSources(try next(), at: location)
                    continue
                }
                if here == nil { here = ConfigLocation.Parent(location) }
                let value = try build(try next(), at: ConfigLocation(here!, key: k.value))
                entries.append(ConfigEntry(key: k.value, keyMark: km, value: value))
                if index != nil {
                    index?[k.value] = entries.count - 1
                } else if entries.count == 16 {
                    index = Dictionary(entries.enumerated().map { ($1.key, $0) }, uniquingKeysWith: { a, _ in a })
                }
            }
            for m in merged where !entries.contains(where: { $0.key == m.key }) {
                entries.append(m)
            }
            return entries
        }

        /// The entries a merge key (`<<: *a` or `<<: [*a, *b]`) brings in; earlier sources win.
        private func mergeSources(_ v: Event, at location: ConfigLocation) throws(Diagnostic) -> [ConfigEntry] {
            var out: [ConfigEntry] = []
            func add(_ src: Event) throws(Diagnostic) {
                var src = src
                if src.kind == .alias {
                    if exhaustedAt != nil { return }
                    replaying.append((src.target, 0))
                    src = try next()
                }
                guard src.kind == .mappingStart else {
                    diagnostics.append(Diagnostic(at: mark(src), path: location.path, "a merge key (<<) needs an object or a list of objects"))
                    try skip(src)
                    return
                }
                let converted = try build(src, at: location)
                for e in converted.entries ?? [] where !out.contains(where: { $0.key == e.key }) { out.append(e) }
            }
            var v = v
            var recording = -1
            if v.kind == .alias {
                if exhaustedAt != nil { return [] }
                replaying.append((v.target, 0))
                v = try next()
            } else if v.kind == .sequenceStart {
                recording = startRecording(v)
            }
            if v.kind == .sequenceStart {
                while true {
                    let item = try next()
                    if item.kind == .sequenceEnd { break }
                    try add(item)
                }
                endRecording(v, recording)
            } else {
                try add(v)
            }
            return out
        }

        /// Reads past the node that starts with `e` without building it, still keeping the
        /// anchors it defines (a later alias may name them).
        private func skip(_ e: Event) throws(Diagnostic) {
            let recording = startRecording(e)
            if e.kind == .sequenceStart || e.kind == .mappingStart {
                while true {
                    let inner = try next()
                    if inner.kind == .sequenceEnd || inner.kind == .mappingEnd { break }
                    try skip(inner)
                }
            }
            endRecording(e, recording)
        }

        /// Starts recording the node `e` starts when it defines an anchor (read from the text).
        private func startRecording(_ e: Event) -> Int {
            guard e.anchor != nil else { return -1 }
            var kept = e
            kept.anchor = nil
            recordings.append([kept])
            open.append(recordings.count - 1)
            return recordings.count - 1
        }

        /// After the node's last event: its anchor now names the recording.
        private func endRecording(_ e: Event, _ recording: Int) {
            guard recording >= 0, let name = e.anchor else { return }
            open.removeLast()
            anchors[name] = recording
        }

        /// For a scalar written on one line exactly as its value (plain, or quoted without
        /// escapes): the column of the value's first character.
        private func valueColumn(_ e: Event) -> Int? {
            let q = e.isQuoted ? 1 : 0
            guard e.isPlain || q == 1, e.line >= 1, e.line <= lineStarts.count, e.column >= 1 else { return nil }
            let lineEnd = e.line < lineStarts.count ? lineStarts[e.line] - 1 : bytes.count
            // Skip (column - 1 + q) characters of the line.
            var i = lineStarts[e.line - 1], chars = e.column - 1 + q
            if isASCII {
                guard i + chars <= lineEnd else { return nil }
                i += chars
            } else {
                while chars > 0 && i < lineEnd {
                    i += 1
                    while i < lineEnd && bytes[i] & 0xC0 == 0x80 { i += 1 }
                    chars -= 1
                }
                guard chars == 0 else { return nil }
            }
            var value = e.value
            let same = value.withUTF8 { v in
                guard v.count <= lineEnd - i else { return false }
                for k in 0..<v.count where bytes[i + k] != v[k] || v[k] == UInt8(ascii: "\n") { return false }
                return true
            }
            return same ? e.column + q : nil
        }
    }

    // MARK: - Errors

    /// libyaml's error as a diagnostic: its problem, where, and its context as the hint.
    static func diagnostic(problem: String, line: Int, column: Int, context: (String, Int, Int)?,
                           file: String, bytes: UnsafeBufferPointer<UInt8>) -> Diagnostic {
        let end = endOfContent(SourceLines(String(decoding: bytes, as: UTF8.self)))
        var hint: String? = nil
        if let c = context {
            hint = "\(c.0) at line \(c.1), column \(c.2)"
        }
        if problem.contains("tab") { hint = "indent with spaces; YAML does not allow tabs for indentation" }
        // libyaml notices a truncated file at its very end, often a line below the last
        // thing written: point at where the content stops.
        if line > end.line || (line == end.line && column >= end.column) {
            var h = "the file ends here, before what it opened is complete"
            if let c = context, c.1 < end.line || (c.1 == end.line && c.2 < end.column) {
                h += " (\(c.0) at line \(c.1), column \(c.2))"
            }
            return Diagnostic(file: file, line: end.line, column: end.column, path: "", message: "invalid YAML: \(problem)", hint: h)
        }
        return Diagnostic(file: file, line: line, column: column, path: "", message: "invalid YAML: \(problem)", hint: hint)
    }

    struct Position: Hashable {
        var line: Int
        var column: Int
    }

    /// Where the text ends: just after its last character that is not blank or a comment.
    static func endOfContent(_ lines: SourceLines) -> Position {
        for (i, l) in lines.lines.enumerated().reversed() {
            var end = 0
            var inQuote: Unicode.Scalar? = nil
            for (j, u) in l.enumerated() {
                if let q = inQuote {
                    if u == q { inQuote = nil }
                } else if u == "\"" || u == "'" {
                    inQuote = u
                } else if u == "#" && (j == 0 || l[j - 1] == " " || l[j - 1] == "\t") {
                    break
                }
                if u != " " && u != "\t" && u != "\r" { end = j + 1 }
            }
            if end > 0 { return Position(line: i + 1, column: end + 1) }
        }
        return Position(line: 1, column: 1)
    }

    /// YAML 1.2 core schema resolution of a plain scalar.
    static func resolvePlain(_ t: String) -> ScalarType {
        // Most plain scalars are names, paths and hosts: their first byte already says string
        // (every null, boolean and number starts with one of these).
        switch t.utf8.first ?? 0 {
        case 0, UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "+"), UInt8(ascii: "."), UInt8(ascii: "~"),
             UInt8(ascii: "n"), UInt8(ascii: "N"), UInt8(ascii: "t"), UInt8(ascii: "T"), UInt8(ascii: "f"), UInt8(ascii: "F"):
            break
        default:
            return .string
        }
        switch t {
        case "", "~", "null", "Null", "NULL": return .null
        case "true", "True", "TRUE", "false", "False", "FALSE": return .boolean
        case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN": return .number
        default: break
        }
        var u = Array(t.utf8)[...]
        if let f = u.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { u = u.dropFirst() }
        func digits(_ s: ArraySlice<UInt8>) -> Bool { !s.isEmpty && s.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } }
        if digits(u) { return .integer }
        // [0-9]* (.[0-9]*)? ([eE][-+]?[0-9]+)?, with at least one digit in the mantissa
        var mantissa = u, exponent: ArraySlice<UInt8>? = nil
        if let e = u.firstIndex(where: { $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") }) {
            mantissa = u[..<e]
            var ex = u[(e + 1)...]
            if let f = ex.first, f == UInt8(ascii: "-") || f == UInt8(ascii: "+") { ex = ex.dropFirst() }
            exponent = ex
        }
        if let ex = exponent, !digits(ex) { return .string }
        let parts = mantissa.split(separator: UInt8(ascii: "."), maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count <= 2 else { return .string }
        let intPart = parts[0], frac = parts.count == 2 ? parts[1] : []
        let ok = (intPart.isEmpty || digits(intPart)) && (frac.isEmpty || digits(frac)) && !(intPart.isEmpty && frac.isEmpty)
        if ok && (parts.count == 2 || exponent != nil) { return .number }
        return .string
    }
}
