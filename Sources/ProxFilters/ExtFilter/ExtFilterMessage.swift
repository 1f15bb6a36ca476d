import Foundation
import NIOCore
import ProxCore

/// The wire protocol between Prox and an external filter service (docs/FILTERS.md, "External
/// filters"): the JSON Prox POSTs, and the verdict it reads back.
enum ExtFilterMessage {
    /// What the service decided.
    enum Decision {
        /// Go on, after these edits of the request head (in this order: remove, set, add).
        case proceed(remove: [HeaderName], set: [(HeaderName, String)], add: [(HeaderName, String)])
        /// Answer the client with this.
        case respond(LocalResponse)
    }

    /// Headers a verdict may not touch: framing and hop-by-hop headers are the engine's, and
    /// `Host` was routed on already (a `rewrite` changes it).
    static let reserved: Set<String> = ["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te",
                                        "trailer", "proxy-connection", "host", "expect"]

    /// The JSON body of the call, written as bytes straight into the buffer: header names and
    /// values go from the received head to the JSON without becoming `String`s (building it
    /// from strings cost about 100k instructions per call, measured with callgrind).
    static func request(_ ctx: RequestContext, sendBody: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var out = allocator.buffer(capacity: 512 + ctx.head.fields.bytes.readableBytes * 2)
        out.writeStaticString("{\"version\":1,\"request_id\":")
        writeQuoted(ctx.requestID, &out)
        out.writeStaticString(",\"route\":")
        writeQuoted(ctx.route?.id ?? "", &out)
        out.writeStaticString(",\"client\":{\"ip\":")
        writeQuoted(ctx.clientIPText, &out)
        out.writeStaticString(",\"port\":")
        out.writeString(String(ctx.clientPort))
        out.writeStaticString("},\"listener\":")
        writeQuoted(ctx.listener.id, &out)
        out.writeStaticString(",\"scheme\":")
        writeQuoted(ctx.scheme, &out)
        ctx.withHead { head in
            out.writeStaticString(",\"method\":")
            writeQuoted(head.method.description, &out)
            out.writeStaticString(",\"target\":")
            writeQuoted(head.effectiveTarget, &out)
            out.writeStaticString(",\"path\":")
            writeQuoted(head.effectivePath, &out)
            out.writeStaticString(",\"host\":")
            writeQuoted(head.host, &out)
            out.writeStaticString(head.versionMinor == 0 ? ",\"http_version\":\"HTTP/1.0\",\"headers\":[" : ",\"http_version\":\"HTTP/1.1\",\"headers\":[")
            var first = true
            func line(_ n: UnsafeRawBufferPointer, _ v: UnsafeRawBufferPointer) {
                out.writeStaticString(first ? "[" : ",[")
                first = false
                writeQuoted(bytes: n, &out)
                out.writeInteger(UInt8(ascii: ","))
                writeQuoted(bytes: v, &out)
                out.writeInteger(UInt8(ascii: "]"))
            }
            head.fields.forEachReceived { n, v in line(n, v) }
            head.fields.forEachAdded { n, v, _ in line(n, v); return true }
        }
        out.writeInteger(UInt8(ascii: "]"))
        if sendBody, let body = ctx.requestBody {
            out.writeStaticString(",\"body\":{\"base64\":\"")
            out.writeString(Data(body.readableBytesView).base64EncodedString())
            out.writeStaticString("\",\"bytes\":")
            out.writeString(String(body.readableBytes))
            out.writeStaticString(ctx.requestBodyComplete ? ",\"complete\":true}" : ",\"complete\":false}")
        }
        out.writeInteger(UInt8(ascii: "}"))
        return out
    }

    static func writeQuoted(_ s: String, _ out: inout ByteBuffer) {
        var s = s
        s.withUTF8 { writeQuoted(bytes: UnsafeRawBufferPointer($0), &out) }
    }

    /// Writes `bytes` as a JSON string literal. Bytes that are not valid UTF-8 (obs-text in a
    /// header value) become U+FFFD, so the JSON always parses.
    static func writeQuoted(bytes: UnsafeRawBufferPointer, _ out: inout ByteBuffer) {
        out.writeInteger(UInt8(ascii: "\""))
        // Index loops: iterating the raw buffer as a collection cost about 10k instructions per call.
        let n = bytes.count
        var i = 0
        while i < n && bytes[i] < 0x80 { i += 1 }
        if i < n {
            let repaired = String(decoding: bytes, as: UTF8.self)
            if !repaired.utf8.elementsEqual(bytes) {
                var r = repaired
                r.withUTF8 { escape(UnsafeRawBufferPointer($0), &out) }
                out.writeInteger(UInt8(ascii: "\""))
                return
            }
        }
        escape(bytes, &out)
        out.writeInteger(UInt8(ascii: "\""))
    }

    private static func escape(_ bytes: UnsafeRawBufferPointer, _ out: inout ByteBuffer) {
        guard let base = bytes.baseAddress else { return }
        let n = bytes.count
        var start = 0
        var i = 0
        while i < n {
            let b = bytes[i]
            if b >= 0x20 && b != 0x22 && b != 0x5C && b != 0x7F {
                i += 1
                continue
            }
            if i > start { out.writeBytes(UnsafeRawBufferPointer(start: base + start, count: i - start)) }
            switch b {
            case 0x22: out.writeStaticString("\\\"")
            case 0x5C: out.writeStaticString("\\\\")
            case 0x0A: out.writeStaticString("\\n")
            case 0x0D: out.writeStaticString("\\r")
            case 0x09: out.writeStaticString("\\t")
            default:
                out.writeStaticString("\\u00")
                out.writeInteger(UInt8(0x30) + (b >> 4))
                let low = b & 0xF
                out.writeInteger(low < 10 ? 0x30 + low : 0x57 + low)
            }
            i += 1
            start = i
        }
        if start < n { out.writeBytes(UnsafeRawBufferPointer(start: base + start, count: n - start)) }
    }

    /// A JSON string literal (tests, traces).
    static func quoted(_ s: String) -> String {
        var out = ByteBuffer()
        writeQuoted(s, &out)
        return out.readString(length: out.readableBytes) ?? ""
    }

    /// Reads the service's answer as a decision.
    static func decode(_ answer: ExtFilterAnswer) -> Result<Decision, ExtFilterFailure> {
        guard (200..<300).contains(answer.status) else {
            return .failure(.badAnswer("the service answered \(answer.status); a verdict comes with a 2xx status"))
        }
        if answer.status == 204 || answer.body.readableBytes == 0 { return .success(.proceed(remove: [], set: [], add: [])) }
        let data = Data(answer.body.readableBytesView)
        guard let object = try? JSONSerialization.jsonObject(with: data), let o = object as? [String: Any] else {
            return .failure(.badAnswer("the answer is not a JSON object"))
        }
        switch o["action"] as? String {
        case "continue", nil:
            if o["action"] == nil && !o.isEmpty { return .failure(.badAnswer("the answer has no \"action\"")) }
            do {
                let remove = try names(o["remove_headers"], "remove_headers")
                let set = try fields(o["set_headers"], "set_headers")
                let add = try fields(o["add_headers"], "add_headers")
                return .success(.proceed(remove: remove, set: set, add: add))
            } catch let f as ExtFilterFailure {
                return .failure(f)
            } catch {
                return .failure(.badAnswer("\(error)"))
            }
        case "respond":
            guard let status = (o["status"] as? NSNumber)?.intValue, (200...599).contains(status),
                  (o["status"] as? NSNumber).map({ Double(status) == $0.doubleValue }) == true else {
                return .failure(.badAnswer("\"respond\" needs a \"status\" from 200 to 599"))
            }
            var r = LocalResponse(status: status)
            do {
                for (n, v) in try fields(o["headers"], "headers") { r.headers.append((n, v)) }
            } catch let f as ExtFilterFailure {
                return .failure(f)
            } catch {
                return .failure(.badAnswer("\(error)"))
            }
            if let b = o["body"] {
                guard let text = b as? String else { return .failure(.badAnswer("\"body\" must be a string")) }
                r.body = text
            }
            return .success(.respond(r))
        case let other:
            return .failure(.badAnswer("unknown action '\(other ?? "")' (continue or respond)"))
        }
    }

    private static func checkName(_ name: String, _ key: String) throws -> HeaderName {
        guard !name.isEmpty, name.utf8.allSatisfy(isTokenByte) else {
            throw ExtFilterFailure.badAnswer("\(key): '\(name)' is not a header name")
        }
        guard !reserved.contains(name.lowercased()) else {
            throw ExtFilterFailure.badAnswer("\(key): '\(name)' is the engine's to set, not a filter's")
        }
        return HeaderName(name)
    }

    private static func names(_ v: Any?, _ key: String) throws -> [HeaderName] {
        guard let v else { return [] }
        guard let list = v as? [Any] else { throw ExtFilterFailure.badAnswer("\"\(key)\" must be a list of names") }
        return try list.map { item in
            guard let s = item as? String else { throw ExtFilterFailure.badAnswer("\"\(key)\" must be a list of names") }
            return try checkName(s, key)
        }
    }

    private static func fields(_ v: Any?, _ key: String) throws -> [(HeaderName, String)] {
        guard let v else { return [] }
        guard let map = v as? [String: Any] else { throw ExtFilterFailure.badAnswer("\"\(key)\" must be an object of name: value") }
        // Sorted: JSON objects have no order, and the edits should be the same on every run.
        return try map.keys.sorted().map { name in
            guard let value = map[name] as? String else {
                throw ExtFilterFailure.badAnswer("\(key): the value of '\(name)' must be a string")
            }
            guard !value.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" || $0 == "\0" }) else {
                throw ExtFilterFailure.badAnswer("\(key): the value of '\(name)' holds CR, LF or NUL")
            }
            return (try checkName(name, key), value)
        }
    }
}
