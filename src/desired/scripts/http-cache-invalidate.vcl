
# Invalidation as FOSHttpCache's Varnish client sends it (eZ Platform's purge
# client): PURGE evicts one URL, PURGEKEYS evicts (xkey-purge) or expires
# (xkey-softpurge: served stale once while refetched) every object carrying
# one of the space-separated xkey tags. X-Invalidate-Token must carry the
# shared secret. Not an address ACL: the public's requests reach Varnish from
# the ingress controller's pod, an address inside the cluster like the app's.
import std;
import xkey;

sub webcluster_invalidate {
    # The Varnish pod's copy of the secret, from the generated Secret. A
    # missing header or variable compares unequal.
    if (!req.http.X-Invalidate-Token || req.http.X-Invalidate-Token != std.getenv("WEBCLUSTER_INVALIDATE_TOKEN")) {
        return (synth(403, "Invalidation needs the X-Invalidate-Token"));
    }
    if (req.method == "PURGE") {
        return (purge);
    }
    if (!req.http.xkey-purge && !req.http.xkey-softpurge) {
        return (synth(400, "PURGEKEYS needs an xkey-purge or xkey-softpurge header"));
    }
    set req.http.X-Purged = "0";
    set req.http.X-Expired = "0";
    if (req.http.xkey-purge) {
        set req.http.X-Purged = xkey.purge(req.http.xkey-purge);
    }
    if (req.http.xkey-softpurge) {
        set req.http.X-Expired = xkey.softpurge(req.http.xkey-softpurge);
    }
    return (synth(200, "Purged " + req.http.X-Purged + ", expired " + req.http.X-Expired));
}
