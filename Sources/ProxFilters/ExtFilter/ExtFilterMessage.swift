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

    /// The JSON body of the call.
    static func request(_ ctx: RequestContext, sendBody: Bool, allocator: ByteBufferAllocator) -> ByteBuffer {
        var json = "{\"version\":1"
        json += ",\"request_id\":" + quoted(ctx.requestID)
        json += ",\"route\":" + quoted(ctx.route?.id ?? "")
        json += ",\"client\":{\"ip\":" + quoted(ctx.clientIPText) + ",\"port\":\(ctx.clientPort)}"
        json += ",\"listener\":" + quoted(ctx.listener.id)
        json += ",\"scheme\":" + quoted(ctx.scheme)
        let head = ctx.head
        json += ",\"method\":" + quoted(head.method.description)
        json += ",\"target\":" + quoted(head.effectiveTarget)
        json += ",\"path\":" + quoted(head.effectivePath)
        json += ",\"host\":" + quoted(head.host)
        json += ",\"http_version\":\"HTTP/1.\(head.versionMinor)\""
        json += ",\"headers\":["
        var first = true
        for (name, value) in head.fields.effective {
            json += (first ? "[" : ",[") + quoted(name) + "," + quoted(value) + "]"
            first = false
        }
        json += "]"
        if sendBody, let body = ctx.requestBody {
            let data = Data(body.readableBytesView)
            json += ",\"body\":{\"base64\":\"" + data.base64EncodedString() + "\",\"bytes\":\(body.readableBytes)"
            json += ",\"complete\":\(ctx.requestBodyComplete)}"
        }
        json += "}"
        var out = allocator.buffer(capacity: json.utf8.count)
        out.writeString(json)
        return out
    }

    /// A JSON string literal.
    static func quoted(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 || u.value == 0x7f {
                    let hex = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
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
