# Event class transform on /Events (the root): the PagerDuty routing key pagerbridge sends the
# event to. A device's zPDServiceKey wins; other transforms below the root may set
# evt.pdServiceKey again for their classes. Quotes are replaced because Zenoss runs the
# notification command through a shell without escaping the event's text.
default_key = '0123456789abcdef0123456789abcdef'
device_key = getattr(device, 'zPDServiceKey', '') if device else ''
evt.pdServiceKey = device_key or default_key
evt.summary = (evt.summary or '').replace("'", u'\u2019')
