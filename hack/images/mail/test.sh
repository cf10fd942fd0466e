# shellcheck shell=bash
# Dovecot lets the account in over plain IMAP and lists its welcome message;
# the sink takes an authenticated message and keeps it.
in_image_bg MAIL_USER=alice@example.org MAIL_PASSWORD=secret mail-imap
imap_pid=$BG_PID
in_image_bg MAIL_USER=alice@example.org MAIL_PASSWORD=secret smtp-sink
smtp_pid=$BG_PID
wait_until "dovecot on 1143" bash -c 'exec 3<>/dev/tcp/127.0.0.1/1143'
wait_until "the sink on 2525" bash -c 'exec 3<>/dev/tcp/127.0.0.1/2525'
out=$(in_image python3 -c '
import imaplib, smtplib
imap = imaplib.IMAP4("127.0.0.1", 1143)
imap.login("alice@example.org", "secret")
imap.select("INBOX")
_, data = imap.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")
print(data[0][1].decode().strip())
print(sorted(l.decode().split(" \"/\" ")[-1] for l in imap.list()[1]))
smtp = smtplib.SMTP("127.0.0.1", 2525)
smtp.login("alice@example.org", "secret")
smtp.sendmail("alice@example.org", ["bob@example.org"], "Subject: kept\r\n\r\nbody\r\n")
smtp.quit()
')
expected="Subject: Welcome to the cluster
['Drafts', 'INBOX', 'Sent', 'Trash']"
[ "$out" = "$expected" ] || fail "imap/smtp answered: $out"
wait_until "the sink keeps the message" test -s "$ROOT/tmp/sink/0001.eml"
grep -q '^Subject: kept' "$ROOT/tmp/sink/0001.eml" || fail "kept message: $(cat "$ROOT/tmp/sink/0001.eml")"
stop "$smtp_pid" || fail "smtp-sink exited $? on SIGTERM"
stop "$imap_pid" || true
