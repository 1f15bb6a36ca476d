// libFuzzer harness for the HTTP/1 framers (Sources/ProxEngine/HTTP1). Not part of `swift test`:
// built and run by scripts/fuzz-framer.sh, which compiles it with -sanitize=fuzzer,address; the
// entry point at the bottom hands control to libFuzzer's driver.
//
// Checks, beyond "no crash, no hang" (the sanitizers and Swift's runtime checks do those):
// - the same bytes give the same events whether they arrive at once, byte by byte, or in the
//   chunk sizes the input's first byte selects (incremental parsing is exact);
// - after `.error` the parser yields nothing more;
// - every recorded offset lies inside the head's bytes;
// - body bytes never exceed the input, and a Content-Length body that ends is exactly n bytes;
// - a request head the parser accepted, written by HTTP1Writer, parses again to the same
//   method, path, host and fields (the writer never emits what the parser would reject);
// - the ClientHello peek (`ClientHelloParser`) decides a prefix either not at all or as the
//   whole input.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import ProxCore
import ProxEngine

@inline(never)
func check(_ ok: @autoclosure () -> Bool, _ what: @autoclosure () -> String) {
    if !ok() {
        fputs("INVARIANT VIOLATED: \(what())\n", stderr)
        abort()
    }
}

func headSummary(_ h: RequestHead) -> String {
    let bytes = h.fields.bytes.readableBytes
    check(Int(h.targetStart) + Int(h.targetLength) <= bytes, "target out of range")
    check(h.pathLength <= h.targetLength, "path longer than target")
    for s in h.fields.slots {
        check(Int(s.nameStart) + Int(s.nameLength) <= bytes, "name out of range")
        check(Int(s.valueStart) + Int(s.valueLength) <= bytes, "value out of range")
        check(s.nameLength > 0, "empty name")
    }
    let fields = h.fields.effective.map { "\($0.name)=\($0.value)" }.joined(separator: "|")
    return "head \(h.method) \(h.target) v\(h.versionMinor) host=\(h.host) \(h.framing) ka=\(h.keepAlive) ec=\(h.expectContinue) dropped=\(h.droppedHeaders) [\(fields)]"
}

func responseSummary(_ h: ResponseHead) -> String {
    let bytes = h.fields.bytes.readableBytes
    for s in h.fields.slots {
        check(Int(s.nameStart) + Int(s.nameLength) <= bytes, "name out of range")
        check(Int(s.valueStart) + Int(s.valueLength) <= bytes, "value out of range")
    }
    let fields = h.fields.effective.map { "\($0.name)=\($0.value)" }.joined(separator: "|")
    return "\(h.status) \(h.reason) v\(h.versionMinor) \(h.framing) ka=\(h.keepAlive) [\(fields)]"
}

/// Feeds `input` in pieces of `step` bytes (0 = at once) and returns the event transcript.
func requestTranscript(_ input: UnsafeRawBufferPointer, step: Int, limits: HTTP1Limits, heads: inout [RequestHead]) -> [String] {
    var parser = HTTP1RequestParser(limits: limits)
    var buf = ByteBuffer()
    var out: [String] = []
    var body = 0
    var failed = false
    var expected: Int64 = -1
    var bodyTotal = 0
    func drain() {
        while let ev = parser.next(&buf) {
            check(!failed, "event after error")
            switch ev {
            case .head(let h):
                out.append(headSummary(h))
                heads.append(h)
                body = 0
                if case .contentLength(let n) = h.framing { expected = n } else { expected = -1 }
            case .body(let b):
                check(b.readableBytes > 0, "empty body event")
                body += b.readableBytes
                bodyTotal += b.readableBytes
                if out.last?.hasPrefix("body") == true { out.removeLast() }
                out.append("body \(body)")
            case .end:
                if expected >= 0 { check(Int64(body) == expected, "content-length body size") }
                out.append("end")
            case .error(let e):
                failed = true
                out.append("error \(e.status) \(e.category)")
            }
        }
    }
    let n = step <= 0 ? max(input.count, 1) : step
    var i = 0
    var k = 0
    while i < input.count {
        let e = min(i + n, input.count)
        buf.writeBytes(UnsafeRawBufferPointer(rebasing: input[i..<e]))
        i = e
        drain()
        k += 1
        if k % 3 == 0 { buf.discardReadBytes() }
    }
    drain()
    check(bodyTotal <= input.count, "more body than input")
    if !failed, let ev = parser.endOfInput() {
        switch ev {
        case .end: out.append("eof end")
        case .error(let e): out.append("eof error \(e.status)")
        default: check(false, "unexpected event at end of input")
        }
    }
    return out
}

func responseTranscript(_ input: UnsafeRawBufferPointer, step: Int, method: HTTPMethod, limits: HTTP1Limits) -> [String] {
    var parser = HTTP1ResponseParser(limits: limits, requestMethod: method)
    var buf = ByteBuffer()
    var out: [String] = []
    var body = 0
    var failed = false
    func drain() {
        while let ev = parser.next(&buf) {
            check(!failed, "event after error")
            switch ev {
            case .informational(let h):
                check(h.status >= 100 && h.status < 200 && h.status != 101, "informational status")
                out.append("info " + responseSummary(h))
            case .head(let h):
                check(h.status >= 200 && h.status <= 599, "final status")
                out.append("head " + responseSummary(h))
                body = 0
            case .body(let b):
                check(b.readableBytes > 0, "empty body event")
                body += b.readableBytes
                if out.last?.hasPrefix("body") == true { out.removeLast() }
                out.append("body \(body)")
            case .end:
                out.append("end")
            case .error(let e):
                check(e.status == 502, "response errors are 502")
                failed = true
                out.append("error \(e.category)")
            }
        }
    }
    let n = step <= 0 ? max(input.count, 1) : step
    var i = 0
    while i < input.count {
        let e = min(i + n, input.count)
        buf.writeBytes(UnsafeRawBufferPointer(rebasing: input[i..<e]))
        i = e
        drain()
    }
    drain()
    if !failed, let ev = parser.endOfInput() {
        switch ev {
        case .end: out.append("eof end")
        case .error: out.append("eof error")
        default: check(false, "unexpected event at end of input")
        }
    }
    return out
}

func roundTrip(_ h: RequestHead, allowUnderscores: Bool) {
    var wire = ByteBuffer()
    HTTP1Writer.writeRequestHead(h, framing: h.framing, into: &wire)
    let text = String(buffer: wire)
    var p = HTTP1RequestParser(limits: HTTP1Limits(maxHeaderBytes: 1 << 20, maxHeaders: 10_000, maxURIBytes: 1 << 20,
                                                   allowUnderscoresInHeaders: allowUnderscores))
    guard case .head(let again)? = p.next(&wire) else {
        check(false, "writer output does not parse: \(text.debugDescription)")
        return
    }
    check(again.method == h.method, "method changed")
    check(again.target == h.effectiveTarget, "target changed")
    check(again.host == h.host, "host changed: \(h.host) -> \(again.host)")
    let before = h.fields.effective.filter { $0.name.lowercased() != "host" }.map { "\($0.name)=\($0.value)" }
    let after = again.fields.effective.filter { $0.name.lowercased() != "host" }.map { "\($0.name)=\($0.value)" }
    check(before == after, "fields changed: \(before) -> \(after)")
    check(again.framing == h.framing, "framing changed")
}

/// `ClientHelloParser` over every `step`-th prefix of the input: a prefix is undecided
/// (`.needMore`) or decided exactly as the whole is (the parser reads from the start and stops
/// at the first problem), and a server name found is lowercase printable ASCII.
func clientHello(_ input: UnsafeRawBufferPointer, step: Int) {
    let maxBytes = 1024
    let whole = ClientHelloParser.parse(input, maxBytes: maxBytes)
    if case .clientHello(let name?) = whole {
        check(!name.isEmpty && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F && !($0 >= 0x41 && $0 <= 0x5A) }, "server name \(name)")
    }
    var n = 0
    while n < input.count {
        let r = ClientHelloParser.parse(UnsafeRawBufferPointer(rebasing: input[0..<n]), maxBytes: maxBytes)
        check(r == .needMore || r == whole, "prefix \(n): \(r), whole: \(whole)")
        n += step
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFramer(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let config = data[0]
    let input = UnsafeRawBufferPointer(start: data + 1, count: size - 1)
    // Small limits so the fuzzer reaches them.
    let limits = HTTP1Limits(maxHeaderBytes: 512, maxHeaders: 12, maxURIBytes: 128, maxChunkLineBytes: 64, maxLeadingEmptyLines: 2,
                             allowUnderscoresInHeaders: config & 4 != 0)
    let step = Int(config >> 3) % 17 + 1
    if config & 1 == 0 {
        var heads: [RequestHead] = []
        let whole = requestTranscript(input, step: 0, limits: limits, heads: &heads)
        var ignored: [RequestHead] = []
        let bytewise = requestTranscript(input, step: 1, limits: limits, heads: &ignored)
        check(whole == bytewise, "whole vs byte by byte:\n\(whole)\n\(bytewise)")
        let chunked = requestTranscript(input, step: step, limits: limits, heads: &ignored)
        check(whole == chunked, "whole vs step \(step):\n\(whole)\n\(chunked)")
        for h in heads { roundTrip(h, allowUnderscores: limits.allowUnderscoresInHeaders) }
    } else if config & 4 != 0 {
        // The ClientHello peek (bit 2 is only the requests' underscore switch otherwise).
        clientHello(input, step: step)
    } else {
        let method: HTTPMethod = config & 2 == 0 ? .get : .head
        let whole = responseTranscript(input, step: 0, method: method, limits: limits)
        let bytewise = responseTranscript(input, step: 1, method: method, limits: limits)
        check(whole == bytewise, "whole vs byte by byte:\n\(whole)\n\(bytewise)")
        let chunked = responseTranscript(input, step: step, method: method, limits: limits)
        check(whole == chunked, "whole vs step \(step):\n\(whole)\n\(chunked)")
    }
    return 0
}

// SwiftPM links executables with their own entry point (`main` aliased to the module's), so
// libFuzzer's `main` is not used: run its driver from here instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

var fuzzArgc = CommandLine.argc
var fuzzArgv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&fuzzArgc, &fuzzArgv, fuzzFramer))
