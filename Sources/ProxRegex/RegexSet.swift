import CPCRE2

#if canImport(Glibc)
import Glibc
#endif

/// An ordered set of regexes that answers "which is the first (lowest index) pattern that
/// matches this subject?" with a few combined PCRE2 matches instead of one match per pattern.
///
/// How it is compiled:
///  - Patterns that can be spliced (`Regex.isSpliceable`) are grouped into combined
///    alternations, each alternative written `(?:p)(*THEN)(?C<n>)`: the callout reports which
///    alternative matched, `(*THEN)` moves on to the next alternative when the callout rejects it.
///  - Anchored patterns (`Regex.isAnchored`) and unanchored ones go into separate groups. In an
///    anchored group every alternative can only match at offset 0, so PCRE2 tries them in order
///    and the first one accepted is the lowest index. In an unanchored group PCRE2 reports
///    matches leftmost first, not lowest index first, so the callout records the lowest accepted
///    index and rejects everything to let the search run on (it stops early only when the
///    lowest possible index is accepted).
///  - A group holds at most 256 alternatives (callout numbers are 0...255) and is kept under
///    PCRE2's 64 KiB compiled-size limit (LINK_SIZE=2 on Debian); a group that still fails to
///    compile is split in halves, down to single patterns matched on their own.
///  - Patterns that cannot be spliced are matched on their own, in index order with the rest.
///
/// Every group is JIT-compiled. Matching uses per-thread match data and match context (one
/// per event loop), so no lock is taken. A PCRE2 error inside a combined match (match limit,
/// JIT stack) falls back to matching that group's patterns one by one, so the answer is
/// always the one the individual patterns give.
public final class RegexSet: @unchecked Sendable {
    public let regexes: [Regex]
    let segments: [Segment]

    /// Number of combined (multi-pattern) PCRE2 patterns compiled.
    public let combinedCount: Int
    /// Number of patterns matched on their own (not spliceable, or failed to combine).
    public let individualCount: Int

    public var count: Int { regexes.count }

    /// One compiled group (or one pattern matched alone), covering `indices` (ascending).
    final class Segment {
        let code: OpaquePointer?
        let jit: Bool
        let anchored: Bool
        let indices: [Int32]
        var first: Int { Int(indices[0]) }
        var last: Int { Int(indices[indices.count - 1]) }

        init(code: OpaquePointer?, jit: Bool, anchored: Bool, indices: [Int32]) {
            self.code = code
            self.jit = jit
            self.anchored = anchored
            self.indices = indices
        }

        deinit { if let code { pcre2_code_free_8(code) } }
    }

    /// Largest number of alternatives in one combined pattern (callout numbers are 0...255).
    public static let maxGroupSize = 256
    /// Estimated compiled bytes a group may take; PCRE2's hard limit here is 64 KiB.
    static let groupBudget = 48 * 1024

    /// Groups `regexes` (already compiled) into combined patterns. Never fails: whatever cannot
    /// be combined is matched on its own.
    public init(_ regexes: [Regex], maxGroupSize: Int = RegexSet.maxGroupSize) {
        self.regexes = regexes
        let groupLimit = max(1, min(maxGroupSize, RegexSet.maxGroupSize))
        var segments: [Segment] = []
        var anchored: [Int32] = []
        var unanchored: [Int32] = []
        for (i, r) in regexes.enumerated() {
            if !r.isSpliceable {
                segments.append(Segment(code: nil, jit: false, anchored: r.isAnchored, indices: [Int32(i)]))
            } else if r.isAnchored {
                anchored.append(Int32(i))
            } else {
                unanchored.append(Int32(i))
            }
        }
        let base = RegexSet.baseSize
        for (list, isAnchored) in [(anchored, true), (unanchored, false)] {
            var chunk: [Int32] = []
            var budget = 0
            for i in list {
                let est = max(regexes[Int(i)].compiledSize - base, 8) + 16
                if !chunk.isEmpty && (chunk.count >= groupLimit || budget + est > RegexSet.groupBudget) {
                    RegexSet.compile(chunk, anchored: isAnchored, regexes: regexes, into: &segments)
                    chunk = []
                    budget = 0
                }
                chunk.append(i)
                budget += est
            }
            if !chunk.isEmpty { RegexSet.compile(chunk, anchored: isAnchored, regexes: regexes, into: &segments) }
        }
        segments.sort { $0.first < $1.first }
        self.segments = segments
        self.combinedCount = segments.filter { $0.code != nil }.count
        self.individualCount = segments.filter { $0.code == nil }.count
    }

    /// Compiles each pattern, then the set. Compile errors carry the pattern and offset.
    public convenience init(patterns: [String], caseless: Bool = false) throws(RegexError) {
        var rs: [Regex] = []
        for p in patterns { rs.append(try Regex(p, caseless: caseless)) }
        self.init(rs)
    }

    /// Compiled size of the empty pattern: the fixed part of every `compiledSize`.
    static let baseSize: Int = {
        var err: Int32 = 0
        var off = 0
        guard let c = pcre2_compile_8(MatchScratch.empty, 0, UInt32(PCRE2_UTF), &err, &off, nil) else { return 0 }
        var size = 0
        pcre2_pattern_info_8(c, UInt32(PCRE2_INFO_SIZE), &size)
        pcre2_code_free_8(c)
        return size
    }()

    /// The alternative for one pattern: `(?:rest)(*THEN)(?C<local>)`.
    static func leaf(_ r: Regex, _ rest: String, _ local: Int) -> String {
        (r.anchoredOption ? "\\A" : "") + (r.caseless ? "(?i:" : "(?:") + rest + ")(*THEN)(?C\(local))"
    }

    /// Anchored group: the alternatives in index order, since PCRE2 tries them in that order at
    /// offset 0 and the first one accepted is the answer.
    static func orderedText(_ chunk: [Int32], regexes: [Regex]) -> String {
        chunk.enumerated().map { local, i in leaf(regexes[Int(i)], regexes[Int(i)].pattern, local) }.joined(separator: "|")
    }

    /// Unanchored group: every match is reported to the callout whatever the order of the
    /// alternatives, so the alternatives can be arranged as a trie of their literal leads
    /// (`/res1/[a-z]+` and `/res2/x` become `/res(?:1/(?:[a-z]+)...|2/(?:x)...)`): PCRE2 then
    /// compares a shared lead once per start position instead of once per pattern.
    static func factoredText(_ chunk: [Int32], regexes: [Regex]) -> String {
        final class Node {
            var children: [UInt8: Node] = [:]
            var leaves: [String] = []
        }
        let root = Node()
        for (local, i) in chunk.enumerated() {
            let r = regexes[Int(i)]
            let bytes = Array(r.pattern.utf8)
            var node = root
            var rest = r.pattern
            if !r.caseless && !r.anchoredOption && !PatternSyntax(bytes).topLevelAlternation {
                let run = PatternSyntax.literalRun(bytes, from: 0)
                rest = String(decoding: bytes[run.end...], as: UTF8.self)
                for b in run.bytes {
                    if let c = node.children[b] {
                        node = c
                    } else {
                        let c = Node()
                        node.children[b] = c
                        node = c
                    }
                }
            }
            node.leaves.append(leaf(r, rest, local))
        }
        func emit(_ n: Node) -> String {
            var alts = n.leaves
            for (b, child) in n.children.sorted(by: { $0.key < $1.key }) {
                var label = [b]
                var c = child
                while c.leaves.isEmpty && c.children.count == 1, let (b2, c2) = c.children.first {
                    label.append(b2)
                    c = c2
                }
                var text = ""
                for l in label {
                    if !PatternSyntax.isAlnum(l) { text += "\\" }
                    text += String(UnicodeScalar(l))
                }
                alts.append(text + "(?:" + emit(c) + ")")
            }
            return alts.joined(separator: "|")
        }
        return emit(root)
    }

    static func compile(_ chunk: [Int32], anchored: Bool, regexes: [Regex], into segments: inout [Segment]) {
        let text = anchored ? orderedText(chunk, regexes: regexes) : factoredText(chunk, regexes: regexes)
        var options = UInt32(PCRE2_UTF) | UInt32(PCRE2_DUPNAMES)
        if anchored { options |= UInt32(PCRE2_ANCHORED) }
        var err: Int32 = 0
        var off = 0
        let bytes = Array(text.utf8)
        let code: OpaquePointer? = bytes.withUnsafeBufferPointer { p in
            pcre2_compile_8(p.baseAddress, p.count, options, &err, &off, nil)
        }
        if let code {
            let jit = pcre2_jit_compile_8(code, UInt32(PCRE2_JIT_COMPLETE)) == 0
            segments.append(Segment(code: code, jit: jit, anchored: anchored, indices: chunk))
            return
        }
        if chunk.count == 1 {
            segments.append(Segment(code: nil, jit: false, anchored: anchored, indices: chunk))
            return
        }
        // Too large (or something about the combination PCRE2 refuses): split.
        let mid = chunk.count / 2
        compile(Array(chunk[..<mid]), anchored: anchored, regexes: regexes, into: &segments)
        compile(Array(chunk[mid...]), anchored: anchored, regexes: regexes, into: &segments)
    }

    /// The lowest index of a pattern that matches `subject`, at or after `from`.
    public func firstMatch(_ subject: UnsafeRawBufferPointer, from: Int = 0) -> Int? {
        guard from < count else { return nil }
        return firstMatch(subject, in: from..<count, where: { _ in true })
    }

    public func firstMatch(_ subject: String, from: Int = 0) -> Int? {
        guard from < count else { return nil }
        var s = subject
        return s.withUTF8 { firstMatch(UnsafeRawBufferPointer($0), in: from..<count, validUTF8: true, where: { _ in true }) }
    }

    /// The lowest index `i` in `range` whose pattern matches `subject` and for which `accept(i)`
    /// is true. `accept` is called only for patterns that match, possibly for more than the one
    /// returned (in an unanchored group, matches are found leftmost first), and it may run
    /// other regex matches. Set `validUTF8` only when the subject is known to be valid UTF-8
    /// (a Swift String's bytes): it skips PCRE2's check; invalid UTF-8 otherwise matches nothing.
    public func firstMatch(_ subject: UnsafeRawBufferPointer, in range: Range<Int>, validUTF8: Bool = false,
                           where accept: (Int) -> Bool) -> Int? {
        let lo = max(range.lowerBound, 0)
        var hi = min(range.upperBound, regexes.count)
        guard lo < hi else { return nil }
        var found: Int? = nil
        for seg in segments {
            if seg.first >= hi { break }
            if seg.last < lo { continue }
            if let k = match(seg, subject, lo, hi, validUTF8, accept) {
                found = k
                hi = k
            }
        }
        return found
    }

    /// The lowest index in `lo..<hi` matched by `seg` and accepted.
    func match(_ seg: Segment, _ subject: UnsafeRawBufferPointer, _ lo: Int, _ hi: Int, _ valid: Bool,
               _ accept: (Int) -> Bool) -> Int? {
        guard let code = seg.code else { return matchEach(seg, subject, lo, hi, valid, accept) }
        let scratch = SetScratch.acquire()
        defer { SetScratch.release(scratch) }
        let base = subject.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? MatchScratch.empty
        var rc: Int32 = 0
        var best: Int32 = -1
        seg.indices.withUnsafeBufferPointer { idx in
            var firstLocal = 0
            while firstLocal < idx.count && Int(idx[firstLocal]) < lo { firstLocal += 1 }
            scratch.handled.update(repeating: 0, count: 4)
            withoutActuallyEscaping(accept) { acc in
                var state = CalloutState(indices: idx.baseAddress!, lo: Int32(lo), hi: Int32(hi),
                                         firstLocal: Int32(firstLocal), best: -1, anchored: seg.anchored,
                                         handled: scratch.handled, accept: acc)
                withUnsafeMutablePointer(to: &state) { sp in
                    pcre2_set_callout_8(scratch.context, setCallout, UnsafeMutableRawPointer(sp))
                    if seg.jit && valid {
                        rc = pcre2_jit_match_8(code, base, subject.count, 0, 0, scratch.data, scratch.context)
                    } else {
                        rc = pcre2_match_8(code, base, subject.count, 0, 0, scratch.data, scratch.context)
                    }
                    pcre2_set_callout_8(scratch.context, nil, nil)
                }
                best = state.best
            }
        }
        if rc == PCRE2_ERROR_NOMATCH || (rc > 0 && best >= 0) {
            return best >= 0 ? Int(seg.indices[Int(best)]) : nil
        }
        if rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21 { return nil } // invalid subject: nothing matches
        // Match limit, JIT stack, anything unexpected: the patterns one by one give the answer.
        return matchEach(seg, subject, lo, hi, valid, accept)
    }

    func matchEach(_ seg: Segment, _ subject: UnsafeRawBufferPointer, _ lo: Int, _ hi: Int, _ valid: Bool,
                   _ accept: (Int) -> Bool) -> Int? {
        for i in seg.indices {
            let k = Int(i)
            if k < lo { continue }
            if k >= hi { break }
            let r = regexes[k]
            let ok = valid ? r.rawMatch(subject) > 0 : r.matches(subject)
            if ok && accept(k) { return k }
        }
        return nil
    }
}

/// What the callout sees: which alternatives count and what has been decided so far.
struct CalloutState {
    var indices: UnsafePointer<Int32>
    var lo: Int32
    var hi: Int32
    /// The lowest local alternative inside `lo..<hi`: accepting it ends the search.
    var firstLocal: Int32
    /// Lowest accepted local alternative, or -1.
    var best: Int32
    var anchored: Bool
    /// Bit per local alternative already asked (4 words: 256 alternatives).
    var handled: UnsafeMutablePointer<UInt64>
    var accept: (Int) -> Bool
}

/// Runs at the end of each alternative that matched. Returns 0 to let the match succeed (the
/// answer is final), 1 to reject it and go on with the next alternative.
private let setCallout: @convention(c) (UnsafeMutablePointer<pcre2_callout_block_8>?, UnsafeMutableRawPointer?) -> Int32 = { block, data in
    guard let block, let data else { return 1 }
    let st = data.assumingMemoryBound(to: CalloutState.self)
    let local = Int32(truncatingIfNeeded: block.pointee.callout_number)
    let global = st.pointee.indices[Int(local)]
    if global < st.pointee.lo || global >= st.pointee.hi { return 1 }
    if st.pointee.best >= 0 && local >= st.pointee.best { return 1 }
    let word = Int(local >> 6), bit = UInt64(1) << UInt64(local & 63)
    if st.pointee.handled[word] & bit != 0 { return 1 }
    st.pointee.handled[word] |= bit
    guard st.pointee.accept(Int(global)) else { return 1 }
    st.pointee.best = local
    // Anchored: alternatives are tried in order at offset 0, so the first accepted is the lowest.
    // Unanchored: only the lowest possible alternative is certainly the answer.
    if st.pointee.anchored || local == st.pointee.firstLocal { return 0 }
    return 1
}

/// Per-thread match data and match context for `RegexSet` (one per event loop).
final class SetScratch {
    let data: OpaquePointer
    let context: OpaquePointer
    let handled: UnsafeMutablePointer<UInt64>
    var busy = false

    init() {
        data = pcre2_match_data_create_8(1, nil)!
        context = pcre2_match_context_create_8(nil)!
        handled = .allocate(capacity: 4)
        handled.initialize(repeating: 0, count: 4)
    }

    deinit {
        pcre2_match_data_free_8(data)
        pcre2_match_context_free_8(context)
        handled.deallocate()
    }

    private static let key: pthread_key_t = {
        var k = pthread_key_t()
        pthread_key_create(&k) { ptr in
            if let ptr { Unmanaged<SetScratch>.fromOpaque(ptr).release() }
        }
        return k
    }()

    /// The thread's scratch, or a fresh one when a callout on this thread is already using it.
    static func acquire() -> SetScratch {
        let s: SetScratch
        if let p = pthread_getspecific(key) {
            s = Unmanaged<SetScratch>.fromOpaque(p).takeUnretainedValue()
        } else {
            s = SetScratch()
            pthread_setspecific(key, Unmanaged.passRetained(s).toOpaque())
        }
        if s.busy { return SetScratch() }
        s.busy = true
        return s
    }

    static func release(_ s: SetScratch) { s.busy = false }
}
