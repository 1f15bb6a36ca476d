import NIOCore
import NIOHTTP1
import ProxCore

/// Suspends the chain while an external service decides: POSTs the request (head, and the start
/// of the body when asked) over a pooled connection of this event loop, then goes on, edits the
/// head, or answers, as the service says; on a failure, `fail_mode` decides.
public struct ExtFilterStage: Stage {
    public let url: ExtFilterURL
    let service: ExtFilterService
    let head: HTTPRequestHead
    public let timeoutMillis: Int64
    public let failOpen: Bool
    public let failureStatus: Int
    public let maxBodyBytes: Int
    public let maxIdleConnections: Int
    public let maxConnections: Int

    init(url: ExtFilterURL, service: ExtFilterService, timeoutMillis: Int64, failOpen: Bool, failureStatus: Int,
         maxBodyBytes: Int, maxIdleConnections: Int, maxConnections: Int) {
        self.url = url
        self.service = service
        self.head = extFilterRequestHead(url)
        self.timeoutMillis = timeoutMillis
        self.failOpen = failOpen
        self.failureStatus = failureStatus
        self.maxBodyBytes = maxBodyBytes
        self.maxIdleConnections = maxIdleConnections
        self.maxConnections = maxConnections
    }

    public var kind: String { ExtFilterFactory.name }
    /// The engine reads this much of the body before `request` runs (0: the head alone).
    public var requestBodyBuffer: Int { maxBodyBytes }

    var target: String { "http://\(url.hostHeader)\(url.path)" }

    public func request(_ ctx: RequestContext) -> Verdict {
        guard !ctx.dryRun, let loop = ctx.eventLoop else {
            // Dry-run reaches nothing outside the process: it says what would be asked.
            ctx.record(kind, looked: "POST \(target)" + (maxBodyBytes > 0 ? " with the head and \(ctx.requestBody?.readableBytes ?? 0) body bytes" : " with the head"),
                       decided: "not called in dry-run: assumed continue",
                       why: "serve waits up to \(timeoutMillis) ms for the service's verdict (continue, edit headers, or respond); if it fails, fail_mode \(failOpen ? "open lets the request through" : "closed answers \(failureStatus)")")
            return .next
        }
        let json = ExtFilterMessage.request(ctx, sendBody: maxBodyBytes > 0, allocator: ByteBufferAllocator())
        let call = service.connections(on: loop).call(json, head: head, timeout: .milliseconds(timeoutMillis),
                                                      maxIdle: maxIdleConnections, maxConnections: maxConnections)
        // The future completes on `loop`, the request's loop, where `ctx` lives.
        let bound = NIOLoopBound(ctx, eventLoop: loop)
        let stage = self
        let verdict = call.map { answer in
            stage.decided(bound.value, ExtFilterMessage.decode(answer))
        }.recover { error in
            stage.decided(bound.value, .failure(error as? ExtFilterFailure ?? .unavailable("\(error)")))
        }
        return .suspend(verdict)
    }

    /// Carries out the service's decision, or `fail_mode` on a failure.
    func decided(_ ctx: RequestContext, _ outcome: Result<ExtFilterMessage.Decision, ExtFilterFailure>) -> Verdict {
        switch outcome {
        case .success(.proceed(let remove, let set, let add)):
            ctx.withHead { head in
                for n in remove { head.fields.remove(n) }
                for (n, v) in set { head.fields.set(n, v) }
                for (n, v) in add { head.fields.add(n, v) }
            }
            ctx.record(kind, looked: "POST \(target)", decided: "continue",
                       why: "the service said so" + (remove.isEmpty && set.isEmpty && add.isEmpty ? "" : ", with \(remove.count + set.count + add.count) header edit(s)"))
            return .next
        case .success(.respond(let r)):
            ctx.record(kind, looked: "POST \(target)", decided: "respond \(r.status)", why: "the service said so")
            return .respond(r)
        case .failure(let f):
            if failOpen {
                ctx.record(kind, looked: "POST \(target)", decided: "continue (fail_mode open)", why: "\(f.category): \(f.detail)")
                return .next
            }
            ctx.record(kind, looked: "POST \(target)", decided: "refuse \(failureStatus)", why: "\(f.category): \(f.detail)")
            if ctx.requestID.isEmpty { ctx.requestID = RequestID.generate() }
            return .respond(LocalResponse.error(failureStatus, f.category, requestID: ctx.requestID,
                                                detail: "ext_filter \(target): \(f.detail)"))
        }
    }
}
