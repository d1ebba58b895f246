"""Assembly of the versioned API: one line per feature router."""

from fastapi import APIRouter

from app.audit.router import router as audit_router
from app.auth.router import router as auth_router
from app.core.ratelimit import LimitName
from app.items.router import router as items_router
from app.privacy.router import router as privacy_router
from app.rbac.router import router as rbac_router
from app.users.router import router as users_router
from app.web.ratelimit import rate_limit

# Every API route counts against the default limit first; routes add stricter ones.
router = APIRouter(prefix="/api/v1", dependencies=[rate_limit(LimitName.DEFAULT)])
router.include_router(auth_router)
router.include_router(users_router)
router.include_router(privacy_router)
router.include_router(rbac_router)
router.include_router(items_router)
router.include_router(audit_router)
