import CPCRE2

#if canImport(Glibc)
import Glibc
#endif

/// A compile error with the offset inside the pattern where PCRE2 stopped.
public struct RegexError: Error, Sendable, CustomStringConvertible {
    public let pattern: String
    /// Byte offset in `pattern`.
    public let offset: Int
    public let message: String
    public var description: String { "\(message) at offset \(offset) in \(pattern)" }
}

/// One match: the byte ranges of the whole match (group 0) and of each capture group.
public struct RegexMatch: Sendable {
    /// `groups[0]` is the whole match; nil for a group that did not take part.
    public var groups: [Range<Int>?]
    /// The `(*MARK:name)` name PCRE2 reported, if any.
    public var mark: String?
}

/// A compiled, JIT-compiled PCRE2 pattern, shared read-only by every event loop.
///
/// The pattern is immutable after `init`; matching uses match data owned by the calling thread
/// (one per event loop), so no lock is taken.
public final class Regex: @unchecked Sendable, CustomStringConvertible {
    public let pattern: String
    let code: OpaquePointer
    public let captureCount: Int
    /// Named groups, name to group number.
    public let captureNames: [String: Int]
    public let isJIT: Bool
    /// Compiled with `caseless: true`.
    public let caseless: Bool
    /// Compiled with `anchored: true` (PCRE2_ANCHORED).
    public let anchoredOption: Bool
    /// True when the pattern can only match at the start of the subject: compiled anchored, or
    /// anchored by its own text (`^...`, `\A...`, as PCRE2 itself reports it).
    public let isAnchored: Bool
    /// True when the pattern can be spliced into a combined alternation (`RegexSet`) without
    /// changing what it matches: no back references, subroutine calls, conditionals, branch
    /// resets, `\K`, callouts, verbs or extended mode. Others are matched on their own.
    public let isSpliceable: Bool
    /// For an anchored pattern: literal bytes every subject it matches begins with (empty when
    /// none are known, e.g. caseless patterns or a top-level `|`). nil when not anchored.
    public let anchoredLiteralPrefix: [UInt8]?
    /// The pattern is an anchored literal and nothing else (`^/api/`, `\\A/v1`; not caseless):
    /// a subject matches exactly when it begins with `anchoredLiteralPrefix`. The router files
    /// such a route as a path prefix and runs no regex for it.
    public let isAnchoredLiteral: Bool
    /// Size of the compiled pattern in bytes (PCRE2_INFO_SIZE).
    public let compiledSize: Int

    /// Compiles `pattern` (UTF-8, no implicit anchoring) and JIT-compiles it. `jit: false` skips
    /// the JIT (most of the cost of compiling): for a pattern that is only checked, not matched
    /// (`prox validate`); it still matches, through PCRE2's interpreter.
    public init(_ pattern: String, caseless: Bool = false, anchored: Bool = false, jit: Bool = true) throws(RegexError) {
        self.pattern = pattern
        self.caseless = caseless
        self.anchoredOption = anchored
        var err: Int32 = 0
        var off: Int = 0
        var options = UInt32(PCRE2_UTF)
        if caseless { options |= UInt32(PCRE2_CASELESS) }
        if anchored { options |= UInt32(PCRE2_ANCHORED) }
        let bytes = Array(pattern.utf8)
        let compiled: OpaquePointer? = bytes.withUnsafeBufferPointer { p in
            pcre2_compile_8(p.baseAddress, p.count, options, &err, &off, nil)
        }
        guard let code = compiled else {
            throw RegexError(pattern: pattern, offset: off, message: Regex.message(err))
        }
        self.code = code
        self.isJIT = jit && pcre2_jit_compile_8(code, UInt32(PCRE2_JIT_COMPLETE)) == 0
        var count: UInt32 = 0
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_CAPTURECOUNT), &count)
        self.captureCount = Int(count)
        self.captureNames = Regex.readNames(code)
        var all: UInt32 = 0
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_ALLOPTIONS), &all)
        self.isAnchored = anchored || all & UInt32(PCRE2_ANCHORED) != 0
        var size: Int = 0
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_SIZE), &size)
        self.compiledSize = size
        let syntax = PatternSyntax(bytes)
        self.isSpliceable = syntax.spliceable
        if isAnchored && !caseless && !syntax.topLevelAlternation {
            let literal = PatternSyntax.anchoredLiteral(bytes, anchoredOption: anchored)
            self.anchoredLiteralPrefix = literal.bytes
            self.isAnchoredLiteral = literal.whole
        } else {
            self.anchoredLiteralPrefix = isAnchored ? [] : nil
            self.isAnchoredLiteral = false
        }
    }

    deinit { pcre2_code_free_8(code) }

    public var description: String { pattern }

    static func message(_ code: Int32) -> String {
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBufferPointer { pcre2_get_error_message_8(code, $0.baseAddress, $0.count) }
        return n > 0 ? String(decoding: buf[0..<Int(n)], as: UTF8.self) : "regex error \(code)"
    }

    static func readNames(_ code: OpaquePointer) -> [String: Int] {
        var count: UInt32 = 0, entrySize: UInt32 = 0
        var table: UnsafeMutablePointer<UInt8>? = nil
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMECOUNT), &count)
        guard count > 0 else { return [:] }
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMEENTRYSIZE), &entrySize)
        pcre2_pattern_info_8(code, UInt32(PCRE2_INFO_NAMETABLE), &table)
        guard let t = table else { return [:] }
        var out: [String: Int] = [:]
        out.reserveCapacity(Int(count))
        for i in 0..<Int(count) {
            let e = t + i * Int(entrySize)
            let n = Int(e[0]) << 8 | Int(e[1])
            let name = String(cString: UnsafeRawPointer(e + 2).assumingMemoryBound(to: CChar.self))
            out[name] = n
        }
        return out
    }

    /// True when the pattern matches somewhere in `subject`. Invalid UTF-8 matches nothing.
    @inlinable
    public func matches(_ subject: UnsafeRawBufferPointer) -> Bool {
        rawMatch(subject, checked: true) > 0
    }

    /// Like `matches(_:)` for a subject the caller knows is valid UTF-8 (a Swift String's bytes,
    /// or bytes checked to be ASCII): skips PCRE2's UTF check and takes the JIT fast path.
    @inlinable
    public func matches(validUTF8 subject: UnsafeRawBufferPointer) -> Bool {
        rawMatch(subject, checked: false) > 0
    }

    public func matches(_ subject: String) -> Bool {
        var s = subject
        return s.withUTF8 { rawMatch(UnsafeRawBufferPointer($0), checked: false) > 0 }
    }

    /// Runs the match; returns PCRE2's result (> 0 on a match). The thread's match data then
    /// holds the ovector. `checked: false` requires valid UTF-8 (pcre2_jit_match does not check).
    @usableFromInline
    func rawMatch(_ subject: UnsafeRawBufferPointer, checked: Bool = false) -> Int32 {
        let md = MatchScratch.current.data
        let base = subject.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? MatchScratch.empty
        if isJIT && !checked {
            return pcre2_jit_match_8(code, base, subject.count, 0, 0, md, nil)
        }
        return pcre2_match_8(code, base, subject.count, 0, 0, md, nil)
    }

    /// The first match with its capture ranges, or nil.
    public func firstMatch(_ subject: UnsafeRawBufferPointer) -> RegexMatch? {
        match(subject, checked: true)
    }

    func match(_ subject: UnsafeRawBufferPointer, checked: Bool) -> RegexMatch? {
        let rc = rawMatch(subject, checked: checked)
        guard rc > 0 else { return nil }
        let md = MatchScratch.current.data
        let ov = pcre2_get_ovector_pointer_8(md)!
        var groups: [Range<Int>?] = []
        groups.reserveCapacity(captureCount + 1)
        let unset = prox_pcre2_unset()
        for i in 0...captureCount {
            let s = ov[2 * i], e = ov[2 * i + 1]
            groups.append(s == unset || i >= Int(rc) && s == unset ? nil : Int(s)..<Int(e))
        }
        var mark: String? = nil
        if let m = pcre2_get_mark_8(md) {
            let len = Int(m[-1])
            mark = String(decoding: UnsafeBufferPointer(start: m, count: len), as: UTF8.self)
        }
        return RegexMatch(groups: groups, mark: mark)
    }

    public func firstMatch(_ subject: String) -> RegexMatch? {
        var s = subject
        return s.withUTF8 { match(UnsafeRawBufferPointer($0), checked: false) }
    }

    /// The captured substrings of the first match (index 0 is the whole match), or nil.
    public func captures(_ subject: String) -> [String?]? {
        guard let m = firstMatch(subject) else { return nil }
        let u = Array(subject.utf8)
        return m.groups.map { r in r.map { String(decoding: u[$0], as: UTF8.self) } }
    }

    /// PCRE2 substitution of the first match (`$1`, `${name}` in `replacement`). Returns nil when
    /// the pattern does not match; throws on a bad replacement.
    public func substitute(_ subject: String, _ replacement: String, global: Bool = false) throws(RegexError) -> String? {
        let subj = Array(subject.utf8)
        let rep = Array(replacement.utf8)
        var outLen = max(256, subj.count * 2 + rep.count)
        var options = UInt32(PCRE2_SUBSTITUTE_OVERFLOW_LENGTH)
        if global { options |= UInt32(PCRE2_SUBSTITUTE_GLOBAL) }
        for _ in 0..<2 {
            var out = [UInt8](repeating: 0, count: outLen)
            var len = outLen
            let rc = subj.withUnsafeBufferPointer { s in
                rep.withUnsafeBufferPointer { r in
                    out.withUnsafeMutableBufferPointer { o in
                        pcre2_substitute_8(code, s.baseAddress ?? MatchScratch.empty, s.count, 0, options, nil, nil,
                                           r.baseAddress ?? MatchScratch.empty, r.count, o.baseAddress, &len)
                    }
                }
            }
            if rc == PCRE2_ERROR_NOMEMORY { outLen = len + 1; continue }
            if rc < 0 { throw RegexError(pattern: pattern, offset: 0, message: Regex.message(rc)) }
            if rc == 0 { return nil }
            return String(decoding: out[0..<len], as: UTF8.self)
        }
        return nil
    }

    /// Checks that `replacement` is a valid substitution for this pattern (group references
    /// exist, syntax is right), without needing a matching subject.
    public func validateReplacement(_ replacement: String) throws(RegexError) {
        // Substitute against a subject the pattern may not match: PCRE2 checks the replacement
        // only when a match happens, so check group references ourselves.
        var i = replacement.startIndex
        while i < replacement.endIndex {
            if replacement[i] == "$" {
                let n = replacement.index(after: i)
                guard n < replacement.endIndex else {
                    throw RegexError(pattern: replacement, offset: replacement.utf8.distance(from: replacement.startIndex, to: i), message: "a lone $ at the end; write $$ for a literal dollar")
                }
                if replacement[n] == "$" { i = replacement.index(after: n); continue }
                var ref = ""
                var j = n
                if replacement[n] == "{" {
                    j = replacement.index(after: n)
                    while j < replacement.endIndex && replacement[j] != "}" { ref.append(replacement[j]); j = replacement.index(after: j) }
                    guard j < replacement.endIndex else {
                        throw RegexError(pattern: replacement, offset: replacement.utf8.distance(from: replacement.startIndex, to: i), message: "unclosed ${")
                    }
                    j = replacement.index(after: j)
                } else {
                    while j < replacement.endIndex && (replacement[j].isNumber || replacement[j].isLetter || replacement[j] == "_") {
                        ref.append(replacement[j]); j = replacement.index(after: j)
                    }
                }
                let off = replacement.utf8.distance(from: replacement.startIndex, to: i)
                if let num = Int(ref) {
                    if num > captureCount { throw RegexError(pattern: replacement, offset: off, message: "group $\(num) does not exist; the pattern has \(captureCount) group(s)") }
                } else if ref.isEmpty || captureNames[ref] == nil {
                    throw RegexError(pattern: replacement, offset: off, message: "no group named '\(ref)' in the pattern")
                }
                i = j
            } else {
                i = replacement.index(after: i)
            }
        }
    }
}

/// Per-thread PCRE2 match data: each event loop is one thread, so no two matches share it.
final class MatchScratch {
    let data: OpaquePointer
    nonisolated(unsafe) static let empty: UnsafePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)
        p.pointee = 0
        return UnsafePointer(p)
    }()

    init() {
        // 256 pairs covers any route pattern; PCRE2 truncates the ovector if a pattern has more.
        data = pcre2_match_data_create_8(256, nil)!
    }

    deinit { pcre2_match_data_free_8(data) }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { ptr in
            if let ptr { Unmanaged<MatchScratch>.fromOpaque(ptr).release() }
        }
        return k
    }()

    @usableFromInline
    static var current: MatchScratch {
        if let p = pthread_getspecific(key) {
            return Unmanaged<MatchScratch>.fromOpaque(p).takeUnretainedValue()
        }
        let s = MatchScratch()
        pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        return s
    }
}
